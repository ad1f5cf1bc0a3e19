#pragma once

/// \file
/// The scheduler: a pure state machine that turns change events into build requests.
///
/// `Scheduler::handle(event, now)` returns actions and does nothing else: no threads, no clock,
/// no I/O. The caller (the master) stores what the actions say and wakes the scheduler at
/// `next_deadline()` with a Tick. Tests drive it with a virtual clock.
///
/// The rules of a branch scheduler, per (scheduler, repository, branch):
/// 1. A push to a branch matching `branches` (or a tag matching `tags`) is a change; it is
///    important when it touches a file matching `important_files` (or that list is empty, or
///    its files are unknown).
/// 2. An important change starts a wait, or restarts the running one: its deadline becomes
///    now + tree_stable_timer. An unimportant change joins and extends a running wait the same
///    way, but never starts one.
/// 3. A deadline is never later than the wait's start + max_wait, so a stream of pushes cannot
///    postpone a build forever.
/// 4. When the deadline passes, each of the scheduler's builders gets one build request for the
///    newest revision, listing every change the wait covered.
/// 5. Deleting the branch ends its wait without a build.
/// Force requests bypass waits. Periodic schedulers request builds every `interval` or daily
/// `at` a UTC time.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>

namespace ci::sched {

using WallTime = std::chrono::system_clock::time_point;

/// One pushed commit (or a polled ref update, which knows no files).
struct Change {
    std::int64_t id = 0; ///< assigned by the store; increasing
    std::string repository;
    std::string branch; ///< branch or tag name, without refs/heads/ or refs/tags/
    bool is_tag = false;
    std::string revision;
    std::string author;
    std::string comments;
    /// Paths the commit touched; nullopt when unknown (a poller sees refs, not files).
    std::optional<std::vector<std::string>> files;
    WallTime when{};
    friend bool operator==(const Change&, const Change&) = default;
};

/// Commits pushed to one branch or tag, oldest first; the last one is the new tip.
struct Push {
    std::vector<Change> changes;
};

/// A branch or tag was deleted.
struct RefDeleted {
    std::string repository;
    std::string branch;
    bool is_tag = false;
};

/// Someone asked for builds now (UI, API, CLI).
struct ForceRequest {
    std::vector<std::string> builders; ///< empty: every builder of every force scheduler
    std::string repository;
    std::string branch;
    std::string revision; ///< empty: the branch's tip
    std::string reason;
    std::string who;
    std::map<std::string, std::string> properties;
};

/// Time has passed (the master calls this at next_deadline()).
struct Tick {};

using Event = std::variant<Push, RefDeleted, ForceRequest, Tick>;

/// The merge a triggering build tested, given to the builds it triggers so that they test the
/// same tree even when the target branch has moved since.
struct PinnedMerge {
    std::string target;          ///< the branch merged in; empty: none (built as pushed)
    std::string target_revision; ///< its commit then; empty when there is no target
    friend bool operator==(const PinnedMerge&, const PinnedMerge&) = default;
};

/// A build to queue.
struct RequestBuild {
    std::string scheduler;
    std::string builder;
    std::string repository;
    std::string branch;
    std::string revision; ///< empty: whatever the branch's tip is when the build starts
    std::vector<std::int64_t> change_ids; ///< every change the build covers
    std::string reason;
    std::map<std::string, std::string> properties;
    /// May be merged with other pending requests of the same builder and branch (the
    /// scheduler's collapse_requests); the store records it on the request.
    bool collapsible = false;
    /// Set on a request of a trigger step: the merge its triggering build tested (`revision`
    /// is then the branch tip that build used). nullopt: the builder's merge_target rule, at
    /// the target's tip when the build starts.
    std::optional<PinnedMerge> pinned_merge;
    /// The trigger step that asked for it: the triggering build's request and the step's
    /// number (1..N); 0 and 0 for other requests.
    std::int64_t triggered_by_request = 0;
    int triggered_by_step = 0;
    friend bool operator==(const RequestBuild&, const RequestBuild&) = default;
};

/// A tree-stable wait: what the store persists so that a restart resumes the remaining wait.
struct Wait {
    std::string scheduler;
    std::string repository;
    std::string branch;
    bool is_tag = false;
    WallTime started{};   ///< its first important change
    WallTime deadline{};  ///< when it ends, absolute: it survives a restart unchanged
    std::string revision; ///< the newest tip seen
    std::vector<std::int64_t> change_ids;
    friend bool operator==(const Wait&, const Wait&) = default;
};

/// Store this wait (new or changed).
struct SaveWait {
    Wait wait;
};
/// Forget the wait of (scheduler, repository, branch).
struct ClearWait {
    std::string scheduler;
    std::string repository;
    std::string branch;
};
/// Store when a periodic scheduler runs next.
struct SavePeriodic {
    std::string scheduler;
    WallTime next_run{};
};

using Action = std::variant<RequestBuild, SaveWait, ClearWait, SavePeriodic>;

/// What a restarted master gives back to a new Scheduler.
struct SavedState {
    std::vector<Wait> waits;
    std::map<std::string, WallTime> periodic_next_runs;
};

class Scheduler {
public:
    /// Builds the scheduler for `config.schedulers`. Fails with ConfigInvalid for a pattern that
    /// does not compile (a checked config never has one).
    [[nodiscard]] static Result<Scheduler> create(const config::Config& config);

    Scheduler(Scheduler&&) noexcept;
    Scheduler& operator=(Scheduler&&) noexcept;
    ~Scheduler();

    /// Resumes after a restart: waits keep their absolute deadlines, periodic schedulers their
    /// next runs. Waits of schedulers no longer configured are dropped.
    void restore(const SavedState& saved, WallTime now);

    /// Feeds one event at `now`; returns what to do, in a deterministic order. A ForceRequest
    /// naming an unknown builder fails with InvalidArgument (and changes nothing).
    [[nodiscard]] Result<std::vector<Action>> handle(const Event& event, WallTime now);

    /// When the scheduler next needs a Tick; nullopt when nothing is pending. A periodic
    /// scheduler without a next run (a fresh state) makes it the epoch: due at once.
    [[nodiscard]] std::optional<WallTime> next_deadline() const;

    /// The waits in progress, ordered by (scheduler, repository, branch).
    [[nodiscard]] std::vector<Wait> waits() const;

private:
    struct State;
    explicit Scheduler(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// The events a poller reports after reading a repository's refs: pushes for new or moved
/// branches and tags (one Change each, files unknown), RefDeleted for vanished ones. `refs`
/// maps "refs/heads/x" and "refs/tags/y" to commit ids; other refs are ignored, and so are refs
/// git would refuse or longer than 1024 bytes (a remote that is not git may list anything).
/// Change ids are left 0 for the store to assign.
[[nodiscard]] std::vector<Event> poll_events(const std::string& repository,
                                             const std::map<std::string, std::string>& previous,
                                             const std::map<std::string, std::string>& current,
                                             WallTime now);

} // namespace ci::sched
