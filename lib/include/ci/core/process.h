#pragma once

/// \file
/// Running a child process to completion: build steps, deployment commands, the git CLI.
///
/// The child runs in a process group of its own. When it must stop (its timeout passed, or the
/// caller asked through the stop token) the whole group gets SIGTERM, then SIGKILL after a grace
/// period, so that grandchildren (a test runner's workers, a shell's pipeline) stop too. When
/// the child exits by itself, whatever it left running in its group is stopped the same way: a
/// build step never leaves processes behind. A non-zero exit or a signal is an outcome
/// (ProcessResult), not an error; only failing to start the child is an Error.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci {

/// Which of the child's streams a chunk of output came from.
enum class OutputStream { Stdout, Stderr };

/// What to run, and how.
struct ProcessSpec {
    /// The program and its arguments; argv[0] without a '/' is looked up in PATH. Never put a
    /// secret here: arguments are visible to every user of the machine. Pass secrets in `env`.
    std::vector<std::string> argv;
    std::string cwd; ///< empty: the caller's working directory
    /// Start from the caller's environment (true) or from an empty one (false).
    bool inherit_env = true;
    std::map<std::string, std::string> env; ///< set or replace these variables
    std::vector<std::string> unset_env;     ///< remove these inherited variables
    /// Written to the child's standard input, which is then closed; nullopt: /dev/null.
    std::optional<std::string> stdin_data;
    /// Stop the child after this long; zero: no limit.
    std::chrono::milliseconds timeout{0};
    /// Stop the child (as a timeout does) when it has written nothing to its standard output
    /// or error for this long; zero: no limit.
    std::chrono::milliseconds inactivity_timeout{0};
    /// Time between SIGTERM and SIGKILL when the child is stopped.
    std::chrono::milliseconds kill_grace{5000};
    /// Deliver standard error as Stdout chunks, interleaved as it arrives (a build log).
    bool merge_stderr = false;
    /// Called with each chunk of output as it arrives (not split into lines), on the calling
    /// thread. Empty: output is discarded.
    std::function<void(OutputStream, std::string_view)> on_output;
    /// Asking for a stop ends the child like a timeout does (SIGTERM, grace, SIGKILL).
    std::stop_token stop;
    /// Called about every tick_interval on the calling thread while the child runs (a build
    /// step's log files are read there). Empty, or a zero interval: never.
    std::function<void()> on_tick;
    std::chrono::milliseconds tick_interval{0};
};

/// How a child ended.
struct ProcessResult {
    enum class Termination {
        Exited,    ///< it exited by itself (exit_code)
        Signaled,  ///< a signal it did not get from us killed it (signal)
        TimedOut,  ///< we stopped it because its timeout passed
        Inactive,  ///< we stopped it because it was silent for its inactivity_timeout
        Cancelled, ///< we stopped it because the stop token asked
    };
    Termination termination = Termination::Exited;
    int exit_code = 0; ///< when it exited (also after a stop, if it exited on SIGTERM itself)
    int signal = 0;    ///< the signal that ended it, when one did
    std::chrono::milliseconds duration{0};
    bool killed_after_grace = false; ///< it ignored SIGTERM and got SIGKILL
    /// When Inactive: the silence that stopped it (ProcessSpec::inactivity_timeout).
    std::chrono::milliseconds inactivity{0};

    /// True when it exited by itself with status 0.
    [[nodiscard]] bool success() const noexcept {
        return termination == Termination::Exited && exit_code == 0;
    }
    /// "exited with status 1", "killed by signal 9 (SIGKILL)",
    /// "timed out after 2s; killed with SIGKILL after a 1s grace",
    /// "no output for 20m0s: stopped after 25m3s; exited with status 143", ...
    [[nodiscard]] std::string describe() const;
};

/// Runs `spec` to completion, streaming its output to spec.on_output. Fails with
/// InvalidArgument for an empty argv, ProcessSpawn (native: errno) when the child cannot start:
/// "spawn 'make' in /build: No such file or directory". Thread-safe: any number of calls may
/// run at once; it installs no signal handlers and reaps only its own child.
[[nodiscard]] Result<ProcessResult> run_process(const ProcessSpec& spec);

} // namespace ci
