#pragma once

/// \file
/// Deploying a master: the shell around `<ci/deploy/plan.h>`. Runs its scripts on the target
/// (the OpenSSH client, or /bin/sh for "local"), asks the master's HTTP API for its health,
/// running builds and workers, announces updates on Zulip, and reports each phase.
///
/// Every command returns its exit status (plan.h's Outcome): 0 done, 1 refused (a config the
/// deploy cannot use, builds still running at --timeout, a master that would not start or is
/// not healthy), 2 rolled back (update: the new master was not healthy; the previous one runs
/// again), 3 the target could not be reached (ssh could not connect or log in, or the master's
/// API did not answer when it had to).

#include <chrono>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include <ci/config/config.h>
#include <ci/deploy/plan.h>

namespace ci::deploy {

/// Where a command reports. Implementations decide how lines look (a terminal, a log).
class Progress {
public:
    virtual ~Progress() = default;
    /// One phase: "installing release 1a2b3c4d5e6f7a8b", "healthy after 3s".
    virtual void phase(std::string_view line) = 0;
    /// A wait that counts down: called about once a second with the new line. A terminal shows
    /// it in place; elsewhere only the first line of each wait is worth printing.
    virtual void countdown(std::string_view line) = 0;
    /// A problem (warnings, and the reason of a refusal or a rollback).
    virtual void problem(std::string_view line) = 0;
    /// What `status` and `logs` print (standard output).
    virtual void output(std::string_view text) = 0;
};

/// Progress on standard output and error: phases as lines, a countdown rewritten in place
/// when standard output is a terminal, problems as "error: ..." on standard error.
[[nodiscard]] std::unique_ptr<Progress> make_terminal_progress();

/// What the command line adds to the config.
struct Options {
    SshOptions ssh;
    /// How long update, restart and stop wait for running builds (`--timeout`).
    std::chrono::seconds timeout{1800};
    bool force = false; ///< `--force`: do not wait for running builds
    /// How long a started master has to answer /healthz with 200 (`--health-timeout`).
    std::chrono::seconds health_timeout{60};
    /// The master's API as this machine reaches it (`--api`); empty: http://HOST:WEB_PORT with
    /// the target's host (127.0.0.1 for "local") and the port the master bound.
    std::string api_url;
    int log_lines = 100; ///< `logs --lines`
    bool follow = false; ///< `logs --follow`
    /// How often waits ask again.
    std::chrono::milliseconds poll_interval{500};
    /// `logs`: asking for a stop ends the running ssh or sh (as a timeout would), and `logs`
    /// returns 0 (`--follow` ends this way).
    std::stop_token stop;
};

/// `start`: installs what the runtime needs (process: the supervisor, the binary as a release;
/// docker: pulls the image), writes the config (0600), starts the master and waits until it is
/// healthy. Refuses when a master runs already (use update or restart).
[[nodiscard]] int start(const config::Config& config, const Options& options, Progress& progress);

/// `update`: installs the new binary or pulls the new image, waits for running builds
/// (`timeout`, `force`), announces on Zulip (when configured), swaps, waits for /healthz and,
/// when the new master is not healthy, goes back to the previous binary or image (exit 2).
[[nodiscard]] int update(const config::Config& config, const Options& options, Progress& progress);

/// `restart`: writes the config again and restarts the same binary or image, after waiting for
/// running builds as update does; no rollback (nothing changed but the config).
[[nodiscard]] int restart(const config::Config& config, const Options& options, Progress& progress);

/// `stop`: waits for running builds as update does, then stops the master.
[[nodiscard]] int stop(const config::Config& config, const Options& options, Progress& progress);

/// `status`: the running version, uptime, health, running builds and connected workers. Exit 0
/// when the master runs and is healthy, 1 when it does not run or is not healthy.
[[nodiscard]] int status(const config::Config& config, const Options& options, Progress& progress);

/// `logs`: the master's last `log_lines` lines, and with `follow` the new ones until
/// interrupted.
[[nodiscard]] int logs(const config::Config& config, const Options& options, Progress& progress);

} // namespace ci::deploy
