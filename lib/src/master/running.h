#pragma once

// The builds running now, with what the API needs of them while they run: their steps, the
// newest part of each step's log (in memory, until it is on disk), and the people following a
// log. Owns its lock; every member is thread-safe. Followers are fed from memory: following a
// log never waits for the disk, and a chunk is never read back from the store while it is
// being written.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ci/core/build_result.h>
#include <ci/http/server.h>
#include <ci/store/store.h>

#include "master/log_output.h"
#include "master/metrics.h"

namespace ci::master {

/// One Server-Sent Event: `id: ID` (when given), `event: NAME` and the data, one `data:` line
/// per line of it (a line ends at CR, LF or CRLF, as the stream's own lines do: the data can
/// never add a field or an event of its own).
[[nodiscard]] std::string
sse_event(std::string_view event, std::string_view data, std::string_view id = {});

/// Someone following a step's log over HTTP (through a LogOutput: text or Server-Sent Events).
/// Until it is primed (the log written before it came was sent), what arrives is held back, so
/// the client sees the log in order. Thread-safe.
///
/// Memory is bounded: a client that falls more than max_behind bytes behind (queued and not
/// yet taken), or whose held-back part grows past that while it is primed, is cut off with a
/// note; it reconnects where it was (Last-Event-ID) and reads the rest from the store at its
/// own pace.
class Follower {
public:
    static constexpr std::size_t max_behind = std::size_t{1} << 20;

    explicit Follower(std::shared_ptr<LogOutput> output) : output_(std::move(output)) {}
    /// The log written before the follower came was sent: sends whatever arrived meanwhile.
    void prime();
    /// Chunk `sequence` of the log; false once the client is gone (or was cut off).
    bool deliver(std::int64_t sequence, std::string_view text);
    /// The step ended with `result`: the stream ends (after priming, when not primed yet).
    void end(std::string_view result);

private:
    void cut_locked();

    std::shared_ptr<LogOutput> output_;
    std::mutex mutex_;
    bool primed_ = false;
    bool gone_ = false;
    std::string held_; // chunks [held_first_, held_next_)
    std::int64_t held_first_ = -1;
    std::int64_t held_next_ = 0;
    std::optional<std::string> ended_; // the result, once the step ended
};

/// Someone following one of a step's log files (StepSpec::logfiles) over HTTP. Log files are
/// not kept in memory: a watcher is told when more of its file is in the store, and reads it
/// there. Implementations must be thread-safe and quick (no waiting).
class LogfileWatcher {
public:
    virtual ~LogfileWatcher() = default;
    /// More of the file is in the store.
    virtual void stored() = 0;
    /// All of it is: its step (or build) ended and what it sent is stored.
    virtual void ended() = 0;
};

/// What RunningBuilds::end returns: what the build held, for the caller to give back.
struct EndedBuild {
    store::Build build; ///< with `finished` and `result` set
    std::vector<std::string> locks;
    std::chrono::steady_clock::time_point started;
    BuildLabels labels; ///< what /metrics counts it by
    /// It would have ended `retry`, but its request may not be retried again: it ended
    /// `exception` instead (see add()).
    bool retries_spent = false;
};

/// A step's log as RunningBuilds has it: chunks [0, in_store_before) are on disk, `memory`
/// holds the rest in order (from chunk `memory_first`, up to `next`).
struct LogSnapshot {
    std::int64_t in_store_before = 0;
    std::string memory;
    std::int64_t memory_first = 0; ///< the first chunk in `memory`
    std::int64_t next = 0;         ///< one past the newest chunk received
    bool live = false;             ///< the step is still running (a follower was registered)
    bool started = false; ///< the step has started (false: not yet, or the build has no such step)
    std::string result;   ///< when not live: how the step ended ("" when unknown)
};

class RunningBuilds {
public:
    /// Keeps up to `memory_per_step` bytes of a step's log in memory once its older chunks are
    /// on disk (a follower then reads those from the store).
    explicit RunningBuilds(std::size_t memory_per_step = std::size_t{8} * 1024 * 1024)
        : memory_per_step_(memory_per_step) {}

    /// A build starts: `build` as stored by start_build, holding `locks`. `last_try`: its
    /// request was retried as often as allowed (buildmaster.max_retries), so that this build
    /// ends `exception` where it would end `retry`.
    /// `labels`: what /metrics counts it by once it ends (an empty builder: the build's).
    void add(store::Build build,
             std::vector<std::string> locks,
             bool last_try = false,
             BuildLabels labels = {});
    /// True when build `id` runs on `worker`.
    [[nodiscard]] bool runs_on(std::int64_t id, const std::string& worker);
    /// The worker running `id` (nullopt: not running). Marks it stopping.
    [[nodiscard]] std::optional<std::string> request_stop(std::int64_t id);

    /// The checkout's commits; returns the build to store.
    [[nodiscard]] std::optional<store::Build> checked_out(std::int64_t id,
                                                          std::string branch_tip,
                                                          std::string target_tip,
                                                          std::string merge_commit);
    /// A step started; returns the step to store.
    [[nodiscard]] std::optional<store::Step>
    step_started(std::int64_t id, int step, std::string name, store::WallTime now);
    /// A chunk of a step's log: kept in memory and sent to the step's followers.
    void log(std::int64_t id, int step, std::int64_t sequence, std::string_view text);
    /// Chunk `sequence` of a step's log is on disk: memory may let it go.
    void logged(std::int64_t id, int step, std::int64_t sequence);
    /// A step ended; returns the step to store (with its name and start). Its followers end.
    [[nodiscard]] std::optional<store::Step> step_finished(std::int64_t id,
                                                           int step,
                                                           BuildResult result,
                                                           std::optional<int> exit_code,
                                                           store::WallTime now);

    /// The build ends: it leaves the running set (nullopt when it was not in it: ended already).
    /// A build stopped on request ends "cancelled" unless `result` is retry; a build on its last
    /// try ends "exception" where `result` is retry. Its followers end.
    /// Its logs stay readable from memory until forget(): call that once the end is on disk.
    [[nodiscard]] std::optional<EndedBuild>
    end(std::int64_t id, BuildResult result, store::WallTime now);
    void forget(std::int64_t id);

    /// A step's log as far as memory knows it, from chunk `from` on, registering `follower`
    /// (when given) if the step still runs. nullopt: the build is not in memory (everything is
    /// in the store).
    [[nodiscard]] std::optional<LogSnapshot> snapshot(std::int64_t id,
                                                      int step,
                                                      const std::shared_ptr<Follower>& follower,
                                                      std::int64_t from = 0);

    /// Registers `watcher` for log file `name` of step `step` of build `id` while that step may
    /// still write it (the build runs; the step has not ended, or not started). False when it
    /// cannot (the store has all of the file there will be).
    [[nodiscard]] bool watch_logfile(std::int64_t id,
                                     int step,
                                     const std::string& name,
                                     std::shared_ptr<LogfileWatcher> watcher);
    /// The watchers of log file `name` of step `step` of build `id`.
    [[nodiscard]] std::vector<std::shared_ptr<LogfileWatcher>>
    logfile_watchers(std::int64_t id, int step, const std::string& name);
    /// Takes the watchers of step `step`'s log files (every step's when `step` < 0), once it
    /// (or the build) ended: no watcher registers for them after that.
    [[nodiscard]] std::vector<std::shared_ptr<LogfileWatcher>>
    take_logfile_watchers(std::int64_t id, int step);

    /// The builder of build `id` while it is in memory (running, or ended and not forgotten).
    [[nodiscard]] std::optional<std::string> builder(std::int64_t id);
    /// Builds running now (not those ended and not yet forgotten), oldest first.
    [[nodiscard]] std::vector<store::Build> builds();
    /// How many run now.
    [[nodiscard]] std::size_t size();

private:
    struct Chunk {
        std::int64_t sequence = 0;
        std::string text;
    };
    struct StepState {
        store::Step record;
        std::deque<Chunk> chunks;
        std::size_t bytes = 0;
        std::int64_t next_sequence = 0; ///< one past the newest chunk received
        std::int64_t on_disk = 0;       ///< chunks below this are on disk
        std::vector<std::shared_ptr<Follower>> followers;
    };
    struct Build {
        store::Build record;
        std::vector<std::string> locks;
        std::chrono::steady_clock::time_point started;
        bool stop_requested = false;
        bool ended = false;
        bool last_try = false;
        BuildLabels labels;
        std::map<int, StepState> steps;
        /// Log file watchers by (step, file name).
        std::map<std::pair<int, std::string>, std::vector<std::shared_ptr<LogfileWatcher>>>
            logfile_watchers;
    };
    void trim_locked(StepState& step) const;
    static void end_followers(StepState& step, std::string_view result);

    std::size_t memory_per_step_;
    std::mutex mutex_;
    std::map<std::int64_t, Build> builds_;
};

} // namespace ci::master
