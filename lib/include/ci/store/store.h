#pragma once

/// \file
/// The master's persistent state: changes, tree-stable waits with their deadlines, periodic
/// schedules, and build requests. SQLite (WAL) is the embedded implementation; `Store` is the
/// interface a PostgreSQL backend can implement later, so that several masters share one
/// database.
///
/// Every write is one transaction, committed to disk (synchronous=FULL) before it returns: a
/// master killed with -9 loses nothing it has acknowledged. The schema is versioned; opening a
/// database written by a newer libci fails with a message that says so.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ci/build/test_results.h>
#include <ci/core/build_result.h>
#include <ci/core/error.h>
#include <ci/sched/scheduler.h>

namespace ci::store {

using WallTime = std::chrono::system_clock::time_point;

/// The schema version this libci writes.
inline constexpr int schema_version = 11;

/// Where a build request is in its life.
enum class RequestState {
    Pending,   ///< waiting for a worker
    Claimed,   ///< a dispatcher took it
    Completed, ///< its build finished (whatever the result)
    Cancelled, ///< someone cancelled it before it ran
    Collapsed, ///< merged into a newer request of the same builder and branch (collapsed_into)
};

/// A build request as stored.
struct BuildRequest {
    std::int64_t id = 0;
    sched::RequestBuild request;
    RequestState state = RequestState::Pending;
    WallTime submitted{};
    std::string claimed_by;                     ///< the dispatcher that claimed it
    std::optional<std::int64_t> collapsed_into; ///< when Collapsed: the request that builds it
    friend bool operator==(const BuildRequest&, const BuildRequest&) = default;
};

/// A build: a request a worker ran (or runs).
struct Build {
    std::int64_t id = 0;
    std::int64_t request_id = 0;
    std::string builder;
    std::string worker;
    WallTime started{};
    std::optional<WallTime> finished;
    std::optional<BuildResult> result; ///< nullopt while it runs
    std::string branch_tip;            ///< what the merge-forward checkout recorded
    std::string target_tip;
    std::string merge_commit;
    friend bool operator==(const Build&, const Build&) = default;
};

/// One step of a build.
struct Step {
    std::int64_t build_id = 0;
    int number = 0;
    std::string name;
    std::optional<WallTime> started;
    std::optional<WallTime> finished;
    std::optional<BuildResult> result; ///< nullopt while it runs
    std::optional<int> exit_code;
    std::string description; ///< how it ended ("exited with status 1", "no output for 20m0s...")
    std::optional<build::TestResults> tests;       ///< what its JUnit files held
    std::map<std::string, std::string> properties; ///< what its set_property set
    friend bool operator==(const Step&, const Step&) = default;
};

/// A page of a step's log (Store::log_page).
struct LogPage {
    std::string text;      ///< the chunks read, decompressed, in order
    std::int64_t next = 0; ///< where the next page starts: the first chunk not read
    bool more = false;     ///< whether a chunk below `to` was left for the next page
};

/// A worker the master knows.
struct WorkerRecord {
    std::string name;
    std::string worker_class;
    std::string state; ///< "connected", "idle", "lost", ...
    std::optional<WallTime> last_seen;
    friend bool operator==(const WorkerRecord&, const WorkerRecord&) = default;
};

/// An EC2 instance the master launched: stored before it is needed, so that a restarted master
/// finds and reconciles it.
/// Keyed by its launch's ClientToken: the intent is stored before RunInstances is called, when
/// there is no instance id yet.
struct LatentInstance {
    std::string instance_id; ///< empty while only the intent exists
    std::string worker_class;
    std::string client_token; ///< the key: unique per launch
    /// "launching", "pending", "running", "stopping", "stopped", "terminating", "terminated"
    std::string state;
    WallTime launched{};
    std::optional<WallTime> terminated; ///< when its termination was asked for
    std::string worker;                 ///< its worker's name (the ci:worker tag)
    std::string instance_type;
    std::string market = "on-demand"; ///< "on-demand" or "spot"
    friend bool operator==(const LatentInstance&, const LatentInstance&) = default;
};

/// What a restarted master needs so that the worker of an EC2 instance it adopts can log in
/// again: the key of the worker's current secret (SHA-256 of its one-time token, then of each
/// rotated secret: never the token or the secret itself), and the one before.
struct WorkerKey {
    std::string worker;       ///< "<class>/<suffix>"
    std::string worker_class; ///< its `slaves` class
    std::string key;          ///< hex SHA-256 of its current secret
    std::string previous_key; ///< the key before (valid until `key` is used); empty: none
    std::optional<WallTime> token_expires; ///< while its one-time token is unused
    friend bool operator==(const WorkerKey&, const WorkerKey&) = default;
};

/// What one scheduler step writes: new changes and the actions the scheduler returned for them.
/// Applied in one transaction.
struct Batch {
    std::vector<sched::Change> changes; ///< ids are assigned by add(); they come back in order
    std::vector<sched::Action> actions;
    /// Webhook deliveries (GitHub's X-GitHub-Delivery) these changes came from, recorded in the
    /// same transaction: a delivery is remembered exactly when its changes are stored.
    std::vector<std::string> deliveries;
};

/// The refs the poller last saw of one repository: its baseline, kept across restarts.
struct PolledRefs {
    std::string url; ///< where they were read (another URL: another baseline)
    std::map<std::string, std::string> refs; ///< "refs/heads/x", "refs/tags/y" -> commit id
    WallTime polled{};                       ///< when they were read
    friend bool operator==(const PolledRefs&, const PolledRefs&) = default;
};

/// Where a reporter's message (a commit status, a chat message) is in its life.
enum class ReportState {
    Queued,  ///< stored, not yet accepted by the service
    Sent,    ///< the service accepted it
    Dropped, ///< given up: the service refused it, or it could not be sent in time
};

/// A reporter's message in its outbox: stored before it is sent, so that a master restart
/// neither loses it nor sends it again once the service accepted it.
struct QueuedReport {
    std::int64_t id = 0;  ///< ids only increase: the order the messages were queued in
    std::string reporter; ///< which reporter owns it ("github", ...)
    std::string payload;  ///< the reporter's own serialisation (opaque to the store)
    WallTime queued{};
    friend bool operator==(const QueuedReport&, const QueuedReport&) = default;
};

/// A message for a reporter's outbox, stored by the same transaction as the event it reports
/// (a build request queued, a build started, checked out, ended, a request cancelled), so that
/// a master killed at any moment has either both or neither.
struct OutboxMessage {
    std::string reporter; ///< the outbox queue it joins ("github", ...)
    std::string payload;  ///< the reporter's own serialisation (opaque to the store)
    WallTime queued{};    ///< when it was queued (the event's time; what give-up counts from)
    friend bool operator==(const OutboxMessage&, const OutboxMessage&) = default;
};

/// The outbox messages for a build request that write() queues (its id assigned), or for a build
/// that start_build() records (by its id). Called inside the transaction: no I/O, no store
/// call; it may be called again if the write is retried.
using RequestReports = std::function<std::vector<OutboxMessage>(const BuildRequest& request)>;
using BuildReports = std::function<std::vector<OutboxMessage>(std::int64_t build)>;

/// Which builds to list, newest first.
struct BuildQuery {
    std::string builder;                 ///< empty: every builder
    std::optional<std::int64_t> request; ///< only the builds of this request
    bool unfinished_only = false;        ///< only builds still running
    std::int64_t before_id = 0;          ///< 0: from the newest; otherwise ids below this (paging)
    int limit = 50;
};

/// A build with what its request says of the branch it built (Store::latest_builds).
struct BranchBuild {
    Build build;
    std::string repository; ///< its request's repository ("" for a builder without one)
    std::string branch;     ///< its request's branch
    friend bool operator==(const BranchBuild&, const BranchBuild&) = default;
};

class Store {
public:
    virtual ~Store() = default;

    /// Stores changes (assigning their ids, in order) and applies scheduler actions: waits saved
    /// or cleared, periodic runs saved, build requests queued. All or nothing. Returns the ids
    /// of the changes and of the new build requests. `reports` (may be empty) gives the outbox
    /// messages of each new request, stored in the same transaction.
    struct Written {
        std::vector<std::int64_t> change_ids;
        std::vector<std::int64_t> request_ids;
        /// How long the commit took: mostly the wait for the disk to make it durable.
        std::chrono::nanoseconds commit_time{};
    };
    [[nodiscard]] virtual Result<Written>
    write(const std::vector<Batch>& batches, WallTime now, const RequestReports& reports = {}) = 0;

    /// Assigns ids to changes before the scheduler sees them (their ids appear in its waits).
    /// Ids only increase. A reservation is not stored by itself: an id becomes permanent with the
    /// write() that stores its change, and one that was never stored may be handed out again
    /// after a restart.
    [[nodiscard]] virtual Result<std::vector<std::int64_t>>
    reserve_change_ids(std::size_t count) = 0;

    /// The scheduler's waits and periodic runs, for Scheduler::restore after a restart.
    [[nodiscard]] virtual Result<sched::SavedState> scheduler_state() = 0;

    /// One stored change.
    [[nodiscard]] virtual Result<std::optional<sched::Change>> change(std::int64_t id) = 0;
    /// The newest `limit` changes, newest first; with `before_id`, those with smaller ids.
    [[nodiscard]] virtual Result<std::vector<sched::Change>>
    recent_changes(int limit, std::int64_t before_id = 0) = 0;
    /// Webhook deliveries recorded at or after `since` (for de-duplication after a restart),
    /// oldest first. Read back from the newest to the first one recorded before `since` (a
    /// delivery recorded before a backward clock step may be left out).
    [[nodiscard]] virtual Result<std::vector<std::string>> deliveries_since(WallTime since) = 0;
    /// One build request.
    [[nodiscard]] virtual Result<std::optional<BuildRequest>> request(std::int64_t id) = 0;

    /// Build requests in `state`, oldest first.
    [[nodiscard]] virtual Result<std::vector<BuildRequest>> requests(RequestState state) = 0;

    /// The requests the trigger steps of request `request`'s builds queued (those whose
    /// triggered_by_request is `request`), by step, then oldest first; empty when none. A
    /// retried build of `request` shares them (Store::trigger queues a step's requests once).
    [[nodiscard]] virtual Result<std::vector<BuildRequest>>
    requests_triggered_by(std::int64_t request) = 0;

    /// Claims the oldest pending request of one of `builders` for `dispatcher`, atomically:
    /// however many dispatchers (threads, processes, masters) call this at once, each request
    /// is claimed by exactly one. nullopt when none is pending.
    ///
    /// Collapsing: when that request is collapsible, every pending collapsible request of the
    /// same builder, repository and branch is merged into the newest of them, which is claimed
    /// instead: it lists all their changes, and the others become Collapsed with
    /// `collapsed_into` recording where they went.
    [[nodiscard]] virtual Result<std::optional<BuildRequest>>
    claim(const std::vector<std::string>& builders, const std::string& dispatcher) = 0;

    /// Moves a claimed request to Completed, or back to Pending (its worker was lost).
    [[nodiscard]] virtual Status finish(std::int64_t request, RequestState state) = 0;

    /// The requests of a trigger step, idempotently: the first call for (`request`, `step`)
    /// queues `requests` (each with triggered_by_request/step set to them) in one transaction;
    /// a later call (the triggering request's build retried, the master restarted) queues
    /// nothing and returns the requests the first one queued. Returns their ids in order, and
    /// whether they are new. The outbox messages `reports` gives for each new request are
    /// stored in the same transaction.
    struct Triggered {
        std::vector<std::int64_t> request_ids;
        bool created = false;
    };
    [[nodiscard]] virtual Result<Triggered>
    trigger(std::int64_t request,
            int step,
            const std::vector<sched::RequestBuild>& requests,
            WallTime now,
            const RequestReports& reports = {}) = 0;

    /// Cancels a pending request, storing `reports` in the same transaction; false (and nothing
    /// stored) when it was not pending.
    [[nodiscard]] virtual Result<bool> cancel(std::int64_t request,
                                              const std::vector<OutboxMessage>& reports = {}) = 0;

    /// Records that `worker` started a build of a claimed request, with the outbox messages
    /// `reports` gives for it (may be empty) in the same transaction; returns the build id.
    [[nodiscard]] virtual Result<std::int64_t> start_build(std::int64_t request,
                                                           const std::string& builder,
                                                           const std::string& worker,
                                                           WallTime now,
                                                           const BuildReports& reports = {}) = 0;
    /// Stores a build's checkout (tips, merge) or its end (finished and result), and `reports`,
    /// in one transaction.
    [[nodiscard]] virtual Status update_build(const Build& build,
                                              const std::vector<OutboxMessage>& reports = {}) = 0;
    /// Stores a build's end and moves its claimed request to `request_state` (Completed, or
    /// Pending to run again), with `reports`, in one transaction: a crash never leaves an ended
    /// build whose request is still claimed (and so built again after a restart).
    [[nodiscard]] virtual Status end_build(const Build& build,
                                           RequestState request_state,
                                           const std::vector<OutboxMessage>& reports = {}) = 0;
    [[nodiscard]] virtual Result<std::optional<Build>> build(std::int64_t id) = 0;
    /// Builds matching `query`, newest first.
    [[nodiscard]] virtual Result<std::vector<Build>> builds(const BuildQuery& query) = 0;
    /// The newest build (running or not) of each builder, repository and branch, in no
    /// particular order: what the web UI's grid shows. One query over every build.
    [[nodiscard]] virtual Result<std::vector<BranchBuild>> latest_builds() = 0;
    /// After a master stopped without finishing its builds (a crash, kill -9): every unfinished
    /// build ends as "retry" at `now` and every claimed request returns to Pending, so that
    /// nothing acknowledged is lost. Returns how many builds it ended.
    [[nodiscard]] virtual Result<int> recover_unfinished(WallTime now) = 0;

    /// Creates or updates a step (by build id and number).
    [[nodiscard]] virtual Status save_step(const Step& step) = 0;
    [[nodiscard]] virtual Result<std::vector<Step>> steps(std::int64_t build) = 0;

    /// Stores chunk `sequence` of a step's log, compressed. Idempotent: a chunk sent twice (a
    /// worker that reconnected) is stored once.
    [[nodiscard]] virtual Status
    append_log(std::int64_t build, int step, std::int64_t sequence, std::string_view text) = 0;
    /// A step's log from chunk `from` up to (not including) chunk `to`, in order, decompressed.
    [[nodiscard]] virtual Result<std::string>
    log(std::int64_t build,
        int step,
        std::int64_t from = 0,
        std::int64_t to = std::numeric_limits<std::int64_t>::max()) = 0;

    /// A piece of a step's log, for a reader that sends it page by page (LogPage).
    /// The chunks from `from` up to (not including) `to`, in order and whole, until the text
    /// holds at least `max_bytes` (so one page is at most `max_bytes` plus one chunk).
    [[nodiscard]] virtual Result<LogPage> log_page(std::int64_t build,
                                                   int step,
                                                   std::int64_t from,
                                                   std::int64_t to,
                                                   std::size_t max_bytes) = 0;

    /// Stores chunk `sequence` of log file `name` of a step (StepSpec::logfiles), compressed.
    /// Idempotent as append_log. Not synced to disk by itself, as a step's log is written at
    /// synchronous=NORMAL: a crash of the machine may lose its last chunks.
    [[nodiscard]] virtual Status append_logfile(std::int64_t build,
                                                int step,
                                                const std::string& name,
                                                std::int64_t sequence,
                                                std::string_view text) = 0;
    /// Log file `name` of a step, whole; nullopt when no chunk of it was stored.
    [[nodiscard]] virtual Result<std::optional<std::string>>
    logfile(std::int64_t build, int step, const std::string& name) = 0;
    /// The names of the log files stored for each step of a build, sorted.
    [[nodiscard]] virtual Result<std::map<int, std::vector<std::string>>>
    logfile_names(std::int64_t build) = 0;

    /// Creates or updates a worker (by name). Not synced to disk by itself (worker records are
    /// informational): a crash may lose the newest ones, never an earlier synchronous write.
    [[nodiscard]] virtual Status save_worker(const WorkerRecord& worker) = 0;
    [[nodiscard]] virtual Result<std::vector<WorkerRecord>> workers() = 0;

    /// Creates or updates a latent instance (by client token).
    [[nodiscard]] virtual Status save_instance(const LatentInstance& instance) = 0;
    /// Instances not yet terminated.
    [[nodiscard]] virtual Result<std::vector<LatentInstance>> live_instances() = 0;
    /// Inserts or replaces the key of `key.worker` (synchronously).
    [[nodiscard]] virtual Status save_worker_key(const WorkerKey& key) = 0;
    /// Deletes the key of `worker` (none: nothing happens).
    [[nodiscard]] virtual Status delete_worker_key(const std::string& worker) = 0;
    /// Every stored key, by worker name.
    [[nodiscard]] virtual Result<std::vector<WorkerKey>> worker_keys() = 0;

    /// The refs last saved for `repository`; nullopt when it was never polled.
    [[nodiscard]] virtual Result<std::optional<PolledRefs>>
    polled_refs(const std::string& repository) = 0;
    /// Replaces the refs saved for `repository` (synchronously, like every write). The poller
    /// saves them only after the events of the poll that read them are acknowledged, so that a
    /// crash in between repeats those events rather than losing them.
    [[nodiscard]] virtual Status save_polled_refs(const std::string& repository,
                                                  const PolledRefs& refs) = 0;

    /// Stores `payloads` as Queued messages of `reporter`, in order, in one transaction
    /// (synchronously). Returns their ids.
    [[nodiscard]] virtual Result<std::vector<std::int64_t>> queue_reports(
        const std::string& reporter, const std::vector<std::string>& payloads, WallTime now) = 0;
    /// The Queued messages of `reporter` with ids above `after`, oldest first (what a restarted
    /// reporter sends; with `after`, what was queued since it last looked: ids only increase
    /// in the order the transactions committed).
    [[nodiscard]] virtual Result<std::vector<QueuedReport>>
    queued_reports(const std::string& reporter, std::int64_t after = 0) = 0;
    /// Marks message `id` Sent or Dropped (synchronously): it is never sent again.
    [[nodiscard]] virtual Status
    finish_report(std::int64_t id, ReportState state, WallTime now) = 0;
    /// Queues `messages` and marks the messages of `finished` (id, Sent or Dropped; at `now`) in
    /// one transaction: a reporter that turns one stored message into others (an event into a
    /// chat message) does so exactly once. Returns the new messages' ids, in order.
    [[nodiscard]] virtual Result<std::vector<std::int64_t>>
    change_reports(const std::vector<OutboxMessage>& messages,
                   const std::vector<std::pair<std::int64_t, ReportState>>& finished,
                   WallTime now) = 0;

    /// Deletes what is only history by `before`: webhook delivery ids received before it (the
    /// master de-duplicates deliveries of the last 7 days) and reporter messages Sent or
    /// Dropped before it (never a Queued one). Returns how many rows went.
    [[nodiscard]] virtual Result<std::int64_t> prune(WallTime before) = 0;
};

/// How a SQLite store is opened.
struct SqliteOptions {
    /// How long a write waits for another connection's lock before failing.
    std::chrono::milliseconds busy_timeout{5000};
};

/// Opens (creating it when absent) the SQLite store at `path`, migrating an older schema.
/// Fails with ErrorCode::Store naming the file: a database from a newer libci ("schema
/// version 3 is newer than this libci's 1"), a file that is not a database, a read-only or
/// locked one.
[[nodiscard]] Result<std::unique_ptr<Store>> open_sqlite(const std::filesystem::path& path,
                                                         SqliteOptions options = {});

} // namespace ci::store
