#pragma once

/// \file
/// The build runner: what a worker does with one build. It checks the repository out (merged
/// forward onto the target the master chose), then runs each step as a process in that checkout,
/// streaming the log as it is written and reporting each step's outcome as it ends.
///
/// Every step sees the worker's environment plus:
///  - the step's own `env`;
///  - CI_BUILD_ID, CI_BUILDER, CI_REPOSITORY, CI_BRANCH, CI_BRANCH_TIP, CI_TARGET_BRANCH,
///    CI_TARGET_TIP, CI_MERGE_COMMIT (empty when not applicable), CI_REVISION (the commit
///    checked out) and CI_WORKDIR (the checkout's root);
///  - CI_MASTER_URL (the master's web address) and CI_RESULTS_URL (this build's results
///    directory there, see results.h), from the BuildSpec; empty when it has none;
///  - each build property `name` as CI_PROP_<name>, every character other than [A-Za-z0-9]
///    replaced by '_' (the case is kept);
///  - CI_PROPERTIES: a file, empty when the step starts, to which the step may append
///    `KEY=VALUE` lines (KEY matching [A-Za-z_][A-Za-z0-9_]*). Once the step ends, each such
///    value becomes an environment variable of every later step of the build. Other lines,
///    and keys naming one of the variables above, are reported in the log and ignored.
/// Precedence, lowest first: the worker's environment, values from CI_PROPERTIES, the step's
/// `env`, the CI_* variables above.
///
/// The log never shows an environment value: values can be secrets.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <ci/build/test_results.h>
#include <ci/build/work_slots.h>
#include <ci/config/config.h>
#include <ci/core/build_result.h>
#include <ci/core/process.h>
#include <ci/git/merge.h>

namespace ci::build {

/// One step as the master sends it to a worker (config::Step without YAML concerns).
struct StepSpec {
    std::string name;                       ///< shown in the UI and the log
    std::vector<std::string> command;       ///< argv; a shell command is {"/bin/sh", "-c", text}
    std::map<std::string, std::string> env; ///< added to the step's environment
    /// Relative to the checkout, created when missing; empty: the checkout's root. An absolute
    /// path, or one that leaves the checkout through "..", makes the step an "exception".
    std::string workdir;
    std::optional<std::chrono::seconds> timeout; ///< nullopt: only the build's timeout applies
    std::chrono::seconds grace{10};              ///< between SIGTERM and SIGKILL
    bool halt_on_failure = true;                 ///< a failure (or exception) ends the build
    /// A trigger step: no command; the build asks the master (BuildObserver::trigger) to
    /// request builds of these builders and, with `wait`, waits for their result.
    std::optional<config::Trigger> trigger;
    /// An upload step: no command; the build sends `from` (relative to the checkout) to the
    /// master (BuildObserver::upload), which stores it as the results' `to`.
    std::optional<config::Upload> upload;
    bool always_run = false;      ///< runs even after an earlier step (or the timeout) ended it
    bool flunk_on_failure = true; ///< a failure makes the build "failure"
    bool warn_on_failure = false; ///< without flunk_on_failure: a failure makes it "warnings"
    /// Stopped (as by its timeout) after this long without output; zero: never.
    std::chrono::seconds inactivity_timeout{0};
    /// The build property set to the step's trimmed standard output when it succeeds (standard
    /// error goes to the log only); empty: none.
    std::string set_property;
    /// JUnit XML files read when the step ends (a glob relative to its workdir); empty: none.
    std::string test_results;
    /// Extra logs: name -> a file relative to the step's workdir, followed while the step runs
    /// (BuildObserver::logfile_output) from where it stood when the step started (from its
    /// start if the step replaced it). Symlinks and files outside the work directory are not
    /// read (said in the step's log); at most max_logfile_size bytes of each are sent.
    std::map<std::string, std::string> logfiles;
    friend bool operator==(const StepSpec&, const StepSpec&) = default;
};

/// Everything a worker needs to run one build.
struct BuildSpec {
    std::int64_t build_id = 0;
    std::string builder;    ///< the builder's name; also names its work directories
    std::string repository; ///< config name
    /// What `git clone` accepts (credentials come from RunnerOptions); empty: a builder without
    /// a repository: no checkout, the steps run in the work directory, emptied first.
    std::string url;
    std::string branch; ///< the branch (or tag, with is_tag) to build
    bool is_tag = false;
    std::string revision; ///< empty: the branch tip at checkout time
    /// The branch merged in; nullopt: none (the master resolved the builder's merge_target rule
    /// already, with git::merge_target_for).
    std::optional<std::string> merge_target;
    /// The commit of merge_target to merge (a triggered build: the one its triggering build
    /// merged); nullopt: the target's tip at checkout time.
    std::optional<std::string> target_revision;
    std::chrono::seconds timeout{3600}; ///< the whole build, checkout included; zero: no limit
    /// Given to steps as CI_PROP_<name> and as ${prop:NAME} (config/placeholders.h), with the
    /// properties earlier steps set (set_property) over them.
    std::map<std::string, std::string> properties;
    std::vector<StepSpec> steps;
    std::string master_url;  ///< the master's web address: CI_MASTER_URL
    std::string results_url; ///< this build's results directory there: CI_RESULTS_URL
};

/// The most of one log file (StepSpec::logfiles) a step sends: 64 MiB.
inline constexpr std::size_t max_logfile_size = std::size_t{64} * 1024 * 1024;

/// Converts a builder's config into StepSpecs, one per step, in order.
[[nodiscard]] std::vector<StepSpec> step_specs(const config::Builder& builder);

/// Where a worker keeps its files and how it authenticates to git.
struct RunnerOptions {
    /// Work directories, one per build slot: work_root/<builder>/<slot> (see work_slots.h).
    /// Created when missing.
    std::filesystem::path work_root;
    /// What builds lease their work directories from, shared by the builds of one worker; it
    /// must be over work_root. Null: each build leases from a WorkSlots of its own over
    /// work_root, and the slots' lock files alone keep concurrent builds apart.
    std::shared_ptr<WorkSlots> slots;
    std::filesystem::path cache_dir; ///< git mirrors, shared by every build of the worker
    std::string git_token;           ///< HTTPS token (a secret); empty: none
    std::string ssh_key;             ///< private key file for SSH; empty: the agent
    git::Identity identity;          ///< who merge-forward commits are by
    /// Variables of the worker's own environment that steps must not inherit (its secrets, and
    /// a master's AWS keys and config, for its local workers).
    std::vector<std::string> unset_env{"CI_GIT_TOKEN",
                                       "CI_GIT_SSH_KEY",
                                       "CI_WORKER_SECRET",
                                       "LIBCI_CONFIG",
                                       "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN"};
    /// Values replaced by "[redacted]" in step output before it is reported (the worker's
    /// secret; a master's config secrets for its local workers), beside git_token; also when
    /// split across chunks. Values shorter than log::min_secret_length are ignored.
    std::vector<std::string> log_secrets;
    /// Run the steps as this user (`ci-worker start --step-user`; the worker must be root);
    /// before its first step a build gives its work directory (lchown, links not followed) and
    /// CI_PROPERTIES file to that user. nullopt: steps run as the worker.
    std::optional<RunAs> step_user;
    /// Each step in a cgroup v2 of its own made by these (ProcessSpec::cgroups, core/cgroup.h);
    /// null: the step's supervisor alone stops its processes.
    std::shared_ptr<StepCgroups> cgroups;
};

/// The commits a checkout involved, as hexadecimal ids; each is empty when not applicable.
struct CheckoutRecord {
    std::string branch_tip;   ///< the commit of the branch (or tag, or the exact revision) built
    std::string target;       ///< the branch merged in; empty: none
    std::string target_tip;   ///< its commit; empty when there is no target
    std::string merge_commit; ///< the merge-forward commit; empty: none (up to date, conflict)
    std::string revision;     ///< the commit checked out: the merge commit or the branch tip
    std::vector<std::string> conflicts; ///< conflicted paths, sorted; empty unless it conflicted
    friend bool operator==(const CheckoutRecord&, const CheckoutRecord&) = default;
};

/// How one step (or the checkout, step 0) ended.
struct StepOutcome {
    /// Success; Failure (non-zero exit, a signal, its or the build's timeout, a merge
    /// conflict); Exception (could not start: a bad workdir, a missing program, a git error);
    /// Cancelled (stopped on request).
    BuildResult result = BuildResult::Success;
    std::optional<int> exit_code; ///< when the process exited by itself
    std::string description;      ///< ProcessResult::describe(), or why it could not start
    /// What its `test_results` files held; nullopt when it has none, or no file was read.
    std::optional<TestResults> tests;
    /// The property its `set_property` set (name -> value); empty when none was set.
    std::map<std::string, std::string> properties;
};

/// What happens during a build, reported as it happens, on the thread that called run_build.
/// Any member may be empty.
struct BuildObserver {
    /// A step starts: step 0 is "checkout", then the spec's steps as 1..N.
    std::function<void(int step, const std::string& name)> step_started;
    /// Log text of that step, in order, in chunks as they arrive (not split into lines).
    std::function<void(int step, std::string_view text)> output;
    /// Text of one of the step's `logfiles`, in order, in chunks of at most 64 KiB, read about
    /// twice a second while the step runs and once more when it ends.
    std::function<void(int step, const std::string& name, std::string_view text)> logfile_output;
    /// The checkout is done (also when it conflicted).
    std::function<void(const CheckoutRecord&)> checked_out;
    /// A step ended; steps that were not run are never reported.
    std::function<void(int step, const StepOutcome&)> step_finished;
    /// A trigger step (StepSpec::trigger) is reached: asks the master for its builds and
    /// returns the step's outcome, blocking until the master answers, `stop` is requested (then
    /// it returns Cancelled) or `deadline` passes (the step's or the build's timeout: then it
    /// returns Failure). Empty: trigger steps end "exception" (there is no master to ask).
    std::function<StepOutcome(int step,
                              const StepSpec&,
                              std::chrono::steady_clock::time_point deadline,
                              std::stop_token stop)>
        trigger;
    /// An upload step (StepSpec::upload) is reached: sends `from` (an absolute path inside
    /// the checkout) to the master and returns the step's outcome, as trigger does. Empty:
    /// upload steps end "exception" (there is no master to send to).
    std::function<StepOutcome(int step,
                              const StepSpec&,
                              const std::filesystem::path& from,
                              std::chrono::steady_clock::time_point deadline,
                              std::stop_token stop)>
        upload;
};

/// How a build ended.
struct BuildOutcome {
    /// Success; Warnings (a step with warn_on_failure and without flunk_on_failure failed);
    /// Failure (a step with flunk_on_failure failed, the merge conflicted, or the build timed
    /// out); Exception (checkout or infrastructure error, or a step could not start);
    /// Cancelled. With several, the worst counts: cancelled > exception > failure > warnings >
    /// success.
    BuildResult result = BuildResult::Success;
    CheckoutRecord checkout;
    std::string message; ///< one line for people: what failed, or empty on success
};

/// Runs one build:
///  1. Step 0, "checkout": leases a work directory (the lowest free slot of spec.builder, see
///     WorkSlots) and git::checkout's into it. A merge conflict ends the build as "failure"; a
///     git error, or no work directory, as "exception" (the message in the log). The slot is
///     released when run_build returns.
///  2. Each step, in order, with ci::run_process (standard error merged into the log). Before
///     each step the build checks that its work directory is still its lease and that HEAD
///     there is still the commit it checked out; if not, the step and the build end
///     "exception", saying so (so a step must not move HEAD, e.g. by committing). A step that
///     does not succeed and has halt_on_failure ends the build: later steps are neither run
///     nor reported, except those with always_run. Otherwise the build goes on. A failed step
///     makes the build "failure" with flunk_on_failure, else "warnings" with warn_on_failure,
///     else nothing; a step that could not start makes it "exception" whatever its flags.
///     Placeholders in the argv, env values and workdir (config/placeholders.h) are filled in
///     first: one that cannot be (a property nobody set) fails the step. A step silent for its
///     inactivity_timeout is stopped like a timed-out one and fails, saying so.
///  3. `stop` cancels: the running step gets SIGTERM, then SIGKILL after its grace; the step and
///     the build end "cancelled", and no later step runs (not even always_run ones).
///  4. spec.timeout stops the build the same way: the running step and the build end "failure",
///     the message says the build timed out; always_run steps still run after it, each under
///     its own timeout and inactivity_timeout only. The checkout itself cannot be interrupted:
///     a stop or the timeout takes effect when it returns. No step runs after a checkout that
///     failed.
/// Never throws for a build's own failures; all of them are outcomes. Thread-safe: concurrent
/// builds, of one builder or several, each run in a work directory of their own.
[[nodiscard]] BuildOutcome run_build(const BuildSpec& spec,
                                     const RunnerOptions& options,
                                     const BuildObserver& observer,
                                     std::stop_token stop);

} // namespace ci::build
