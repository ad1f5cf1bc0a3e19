#pragma once

/// \file
/// Running a child process to completion: build steps, deployment commands, the git CLI.
///
/// The child runs under a supervisor: a forked copy of this process that is a child subreaper
/// (PR_SET_CHILD_SUBREAPER), so that every descendant of the child, even one that left its
/// process group or session (`setsid`, a `set -m` job) and whose parent exited, stays below it.
/// When the child must stop (its timeout passed, or the caller asked through the stop token)
/// every descendant gets SIGTERM, then SIGKILL after a grace period. When the child exits by
/// itself, whatever it left running is stopped the same way: a build step never leaves
/// processes behind, and the processes of two children running at once never mix (each has
/// its own supervisor). The supervisor dies with the thread that called run_process
/// (PR_SET_PDEATHSIG; that thread waits in run_process until the supervisor is gone, so only
/// the death of the whole process fires it), and then kills every descendant at once; the child
/// itself dies with its supervisor (PR_SET_PDEATHSIG, SIGKILL). A non-zero exit or a signal is
/// an outcome (ProcessResult), not an error; only failing to start the child is an Error.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

#include <ci/core/error.h>

namespace ci {

class StepCgroups;

/// Which of the child's streams a chunk of output came from.
enum class OutputStream { Stdout, Stderr };

/// Another user to run a child as, from lookup_user.
struct RunAs {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; ///< supplementary groups (getgrouplist)
    std::string home;          ///< the child's HOME
};

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
    /// Run the child as this user (setgroups, setgid, setuid between fork and exec; this process
    /// must be root), with HOME, USER and LOGNAME set to its own unless `env` sets them.
    std::optional<RunAs> run_as;
    /// A descriptor the supervisor keeps open until every process of the child has exited, e.g.
    /// a work directory's lock file (flock): the lock outlives this process while the child's
    /// processes are being stopped. The child does not get it. -1: none.
    int hold_fd = -1;
    /// Leave alone what the child leaves running when it ends by itself (a service a deploy
    /// script started with `setsid ... &`): the supervisor is then no subreaper and ends with
    /// the child instead of stopping what is left. A timeout or stop still ends the whole tree.
    /// Never for build steps.
    bool leave_running = false;
    /// Run the child in a cgroup v2 of its own made by these (core/cgroup.h): its leader joins
    /// it before exec, and when the supervisor is done, whatever is still in it (a process that
    /// escaped the tree) is killed and the cgroup removed before run_process returns. Null: the
    /// supervisor alone.
    std::shared_ptr<StepCgroups> cgroups;
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
    std::chrono::milliseconds duration{0}; ///< from its start to its end, any grace included
    /// When we stopped it (TimedOut, Inactive, Cancelled): from its start to the stop, without
    /// the time it then took to end.
    std::chrono::milliseconds stopped_after{0};
    bool killed_after_grace = false; ///< it ignored SIGTERM and got SIGKILL
    /// When Inactive: the silence that stopped it (ProcessSpec::inactivity_timeout).
    std::chrono::milliseconds inactivity{0};
    /// The cgroup the child ran in (ProcessSpec::cgroups), now removed; empty: none.
    std::string cgroup;

    /// True when it exited by itself with status 0.
    [[nodiscard]] bool success() const noexcept {
        return termination == Termination::Exited && exit_code == 0;
    }
    /// "exited with status 1", "killed by signal 9 (SIGKILL)",
    /// "timed out after 2s; it ignored SIGTERM and was killed with SIGKILL",
    /// "no output for 20m0s: stopped after 25m3s; it then exited with status 143", ...: the time
    /// said is when it was stopped (stopped_after), its end follows.
    [[nodiscard]] std::string describe() const;
};

/// Runs `spec` to completion, streaming its output to spec.on_output. Fails with
/// InvalidArgument for an empty argv, ProcessSpawn (native: errno) when the child cannot start:
/// "spawn 'make' in /build: No such file or directory"; also when its cgroup cannot be made
/// or joined. Thread-safe: any number of calls may
/// run at once; it installs no signal handlers and reaps only its own child (the supervisor).
[[nodiscard]] Result<ProcessResult> run_process(const ProcessSpec& spec);

/// The user `name` from the user database, for ProcessSpec::run_as. Fails with NotFound
/// ("step_user 'x': no such user").
[[nodiscard]] Result<RunAs> lookup_user(const std::string& name);

/// Makes this process a child subreaper (PR_SET_CHILD_SUBREAPER) and starts a thread that, once
/// a second, kills (SIGKILL) and reaps the processes re-parented to it that run_process did not
/// start: what is left of a child whose supervisor was killed. For a program's main (ci-worker,
/// ci-master), never for a library that shares its process: every other child the process
/// starts must come from run_process. Calling it again does nothing. Fails with Unsupported
/// (native: errno) when the kernel refuses.
[[nodiscard]] Status become_subreaper();

/// A number of seconds for a command-line option ("--timeout 2.5"), in milliseconds: a finite
/// decimal number from 0 up to `max_seconds`, 0 or at least 0.001 (the resolution). Fails with
/// InvalidArgument naming `option`: "--grace: 1e10 is more than 31536000 seconds (365 days)",
/// "--timeout: nan is not a number of seconds", "--timeout: 1e-7 is below 1 millisecond; 0
/// means no limit".
[[nodiscard]] Result<std::chrono::milliseconds>
parse_seconds(std::string_view option, std::string_view text, double max_seconds = 31536000);

} // namespace ci
