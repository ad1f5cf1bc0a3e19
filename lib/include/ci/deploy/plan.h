#pragma once

/// \file
/// Deploying a master, as pure decisions: the shell scripts each phase runs on the target (for
/// the `docker`, `podman` and `process` runtimes), the ssh command line that carries them, how
/// to read what they print, and when to wait, refuse, go on or roll back. Nothing here runs a
/// process, reads a clock or opens a socket: `<ci/deploy/deployer.h>` does that.
///
/// Rules every script keeps:
///  1. No secret is ever in a script or an argument: the config goes to the target on the
///     standard input of `write_config_script()`, which stores it with umask 077 (mode 0600).
///  2. Every value from the config that a script names (paths, image, tag) is shell-quoted.
///  3. A script's exit status says what happened (the `Exit*` constants below); what it prints
///     on standard output is meant for parse_status() or for the user.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>

namespace ci::deploy {

/// The name of the container (docker, podman) and of the state volume.
inline constexpr std::string_view container_name = "libci-master";
inline constexpr std::string_view state_volume = "libci-state";
/// The user id the image's master runs as (docs/Dockerfile): the owner of the config it reads.
inline constexpr int image_uid = 10001;

/// Exit statuses of the scripts, besides 0 (done).
inline constexpr int ExitAlreadyRunning = 10;   ///< start: a master runs already
inline constexpr int ExitNothingInstalled = 11; ///< start/rollback: no release to run
inline constexpr int ExitBinaryBroken = 12;     ///< install: the binary does not run on the target
inline constexpr int ExitNotPermitted = 13;     ///< write_config: the container cannot read it
inline constexpr int ExitLocked = 14; ///< lock: another ci-deploy changes this target right now
/// ssh's own status when it could not connect or log in (its command's are below 255).
inline constexpr int ExitSshFailed = 255;

/// What a deployment needs to know, taken from a config (settings_from()).
struct Settings {
    config::DeployTarget target;
    config::Deploy::Runtime runtime = config::Deploy::Runtime::Docker;
    std::string image;                   ///< `deploy.image` (docker, podman)
    std::string tag = "latest";          ///< `buildmaster.docker_tag`
    std::string data_dir = "/srv/libci"; ///< `deploy.data_dir`
    std::string binary;                  ///< `deploy.binary` (process)
    std::uint16_t web_port = 8010;       ///< `buildmaster.web_port` (0: read from the target)
    std::uint16_t worker_port = 9989;    ///< `buildmaster.worker_port`
    std::string host;                    ///< `buildmaster.host`
    int shutdown_grace = 60;             ///< seconds the master gives running builds at a stop
};

/// The settings of `config` (its `deploy` section, ports and tag), with the target parsed.
/// Fails with InvalidArgument naming the key when the deploy section cannot be used: a bad
/// `deploy.target`, a docker or podman runtime without `deploy.image` (also when the file has
/// no deploy section at all), a process runtime without `deploy.binary`.
[[nodiscard]] Result<Settings> settings_from(const config::Config& config);

/// `text` as one word for a POSIX shell: itself when it holds only [A-Za-z0-9_./:@%+=,-],
/// else between single quotes (each ' written as '\'').
[[nodiscard]] std::string shell_quote(std::string_view text);

/// How ci-deploy reaches an ssh target.
struct SshOptions {
    std::string identity; ///< `--identity FILE` (`-i`); empty: the agent's keys or ssh's defaults
    std::string config;   ///< `--ssh-config FILE` (`-F`); empty: ssh's own
    int connect_timeout = 10; ///< seconds (`ConnectTimeout`)
};

/// The command line that runs `script` on the target. For ssh: the OpenSSH client with
/// BatchMode (no password or passphrase prompt: a key from the agent or `identity`), a connect
/// timeout, `-p PORT` when the target names one, then `--`, USER@HOST and the script (sshd hands
/// it to the login shell). For "local": /bin/sh -c SCRIPT.
[[nodiscard]] std::vector<std::string>
command_line(const config::DeployTarget& target, const SshOptions& ssh, std::string_view script);

/// The supervisor of the `process` runtime, installed as DATA_DIR/bin/libci-supervise: runs
/// DATA_DIR/current/ci-master, pidfiles in DATA_DIR/run, output appended to
/// DATA_DIR/log/master.log (moved to master.log.1 past 50 MB at a start), the master started
/// again when it exits unasked (backoff 1 s doubling to 60 s, reset after a minute of life);
/// SIGTERM passes SIGTERM to the master and waits for it.
[[nodiscard]] std::string_view supervisor_script();

/// A release of the `process` runtime: named by the first 16 hex digits of the binary's
/// SHA-256, so that deploying the same binary twice installs it once.
[[nodiscard]] std::string release_id(std::string_view sha256_hex);

/// What the target says about its master (status_script()'s output, `key=value` lines).
struct RemoteStatus {
    bool running = false;                       ///< the master's supervisor or container runs
    std::optional<std::int64_t> pid;            ///< process: the master's process id
    std::optional<std::int64_t> uptime_seconds; ///< since the master (or container) started
    std::string release;  ///< process: current release id; docker: the image id
    std::string version;  ///< `ci-master --version` (process) or the image reference
    std::string previous; ///< process: the release before (rollback); docker: empty
    std::optional<std::uint16_t> web_port; ///< process: the port the master bound (ports file)
    friend bool operator==(const RemoteStatus&, const RemoteStatus&) = default;
};

/// Reads status_script()'s output; unknown keys and malformed lines are ignored.
[[nodiscard]] RemoteStatus parse_status(std::string_view text);

// The scripts, one per phase. Each is a POSIX sh script (Debian's dash runs them), run with the
// target's login shell through ssh or by /bin/sh locally.

/// Takes DATA_DIR/run/deploy.lock (a directory: mkdir is atomic) for one command that changes
/// the target, recording `owner` and the time in it; ExitLocked, printing the holder, when
/// another command holds it. A lock left by a ci-deploy that was killed stays until removed by
/// hand (the message says where). Ends without `exit` when it took the lock, so that another
/// script can follow it in the same shell (status_script(), to save a connection).
[[nodiscard]] std::string lock_script(const Settings& settings, std::string_view owner);
/// Releases the lock lock_script() took.
[[nodiscard]] std::string unlock_script(const Settings& settings);

/// Prints the RemoteStatus lines. Exits 0 whether or not a master runs.
[[nodiscard]] std::string status_script(const Settings& settings);
/// Stores its standard input as DATA_DIR/config.json, mode 0600 (umask 077, then an atomic
/// rename), keeping the one before as config.json.previous; for docker and podman owned by
/// image_uid (ExitNotPermitted when that fails).
[[nodiscard]] std::string write_config_script(const Settings& settings);
/// process: stores its standard input as DATA_DIR/bin/libci-supervise (mode 0755).
[[nodiscard]] std::string install_supervisor_script(const Settings& settings);
/// process: exits 0 when release `id` is installed (binary and version), 1 when not.
[[nodiscard]] std::string has_release_script(const Settings& settings, std::string_view id);
/// process: stores its standard input as DATA_DIR/releases/ID/ci-master (0755) and its
/// `--version` (run there: ExitBinaryBroken with its output when it does not run).
[[nodiscard]] std::string install_release_script(const Settings& settings, std::string_view id);
/// docker, podman: pulls IMAGE:TAG.
[[nodiscard]] std::string pull_script(const Settings& settings);
/// process: points DATA_DIR/current at release `id` and DATA_DIR/previous at the one before.
/// docker, podman: tags the running container's image IMAGE:libci-previous (for a rollback).
[[nodiscard]] std::string activate_script(const Settings& settings, std::string_view id);
/// Puts back config.json.previous (the config the previous master ran with). process: also
/// points DATA_DIR/current back at DATA_DIR/previous (ExitNothingInstalled without one).
/// docker, podman: start_script(settings, /*previous=*/true) then runs the old image.
[[nodiscard]] std::string rollback_script(const Settings& settings);
/// Starts the master (ExitAlreadyRunning when one runs, ExitNothingInstalled without a
/// release). process: the supervisor, in a session of its own (setsid), so that it outlives the
/// ssh connection. docker, podman: `run -d` with the ports, the state volume and the config
/// mounted read-only; of IMAGE:TAG, or with `previous` of IMAGE:libci-previous.
[[nodiscard]] std::string start_script(const Settings& settings, bool previous = false);
/// Stops the master: SIGTERM (`docker stop -t GRACE`), waits up to the grace and 30 s more,
/// then kills. Exits 0 also when nothing ran.
[[nodiscard]] std::string stop_script(const Settings& settings);
/// Prints the master's last `lines` lines of log; with `follow`, goes on until interrupted.
[[nodiscard]] std::string logs_script(const Settings& settings, int lines, bool follow);
/// docker, podman: removes untagged images after an update. process: removes releases other
/// than current and previous.
[[nodiscard]] std::string prune_script(const Settings& settings);

// Decisions.

/// Before interrupting a master: go on, wait for its running builds, or refuse.
enum class WaitDecision {
    Proceed, ///< no build runs
    Wait,    ///< builds run and the timeout has not passed
    Refuse,  ///< builds still run at the timeout (exit 1)
    Forced,  ///< builds run, but --force says not to wait (they end `retry` and run again)
};
[[nodiscard]] WaitDecision decide_wait(std::size_t running_builds,
                                       std::chrono::seconds waited,
                                       std::chrono::seconds timeout,
                                       bool force);

/// After a start: healthy, keep asking, or give up. `status` is /healthz's HTTP status, or
/// nullopt when nothing answered.
enum class HealthDecision { Healthy, Wait, Unhealthy };
[[nodiscard]] HealthDecision
decide_health(std::optional<int> status, std::chrono::seconds waited, std::chrono::seconds timeout);

/// How a command ended, and its exit status.
enum class Outcome {
    Done,        ///< 0
    Refused,     ///< 1: the config has errors, builds still run, the master would not start
    RolledBack,  ///< 2: the new master was not healthy; the previous one runs again
    Unreachable, ///< 3: ssh could not connect or log in, or the master's API did not answer
};
[[nodiscard]] int exit_code(Outcome outcome);

/// The line a terminal shows while builds run: "waiting for 2 running builds (12, 14): 4m58s
/// left (--force skips the wait)".
[[nodiscard]] std::string countdown_line(const std::vector<std::int64_t>& build_ids,
                                         std::chrono::seconds left);

/// "1h2m3s", "4m0s", "12s".
[[nodiscard]] std::string format_duration(std::chrono::seconds duration);

/// What ci-deploy announces on Zulip, by phase. `from` and `to` are versions (may be empty).
[[nodiscard]] std::string
announce_before(std::string_view host, std::string_view from, std::string_view to);
[[nodiscard]] std::string announce_done(std::string_view host, std::string_view version);
[[nodiscard]] std::string
announce_rolled_back(std::string_view host, std::string_view failed, std::string_view restored);

} // namespace ci::deploy
