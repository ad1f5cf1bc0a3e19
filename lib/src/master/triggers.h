#pragma once

// Trigger steps (config `trigger: {builders, wait}`). A build's worker reaches a trigger step
// and asks the master (protocol Trigger); the master queues one request per named builder, for
// the same repository, branch and revision, pinned to the merge the triggering build tested
// (sched::PinnedMerge), with its properties, and answers (protocol Triggered): at once, or,
// with `wait`, when every triggered build has ended, with the worst result.
//
// Idempotent across retries and restarts: the requests are stored under (the triggering
// request, the step), so a build retried (its worker lost, the master killed) that asks again
// gets the requests the first ask queued, never new ones (Store::trigger).
//
// Threads: ask() is called by the coordinator (a worker's connection); the store work, and the
// ends of triggered requests (ended()), happen on the StoreWrites thread, in order, so that an
// end is either in the store when a wait reads it or comes after the wait is registered. Owns
// its lock.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/build_result.h>
#include <ci/core/clock.h>
#include <ci/sched/scheduler.h>
#include <ci/store/store.h>

#include "master/protocol.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/running.h"
#include "master/store_writes.h"

namespace ci::master {

/// The merge a build of `request` tests: the request's own pin (a triggered build), else the
/// builder's merge_target rule for its branch; nullopt: none (built as pushed). The builder
/// must have a repository.
[[nodiscard]] std::optional<std::string>
merge_target_of(const config::Config& config, const store::BuildRequest& request, bool is_tag);

/// The requests trigger step `step` of a build of `source` asks for: one per builder of
/// `trigger`, for the source's repository, branch and properties, at `branch_tip` (the commit
/// of the branch the build tested), pinned to `pinned`, under the triggerable scheduler that
/// offers the builder. Pure.
[[nodiscard]] std::vector<sched::RequestBuild> triggered_requests(const config::Config& config,
                                                                  const store::BuildRequest& source,
                                                                  const config::Trigger& trigger,
                                                                  int step,
                                                                  std::int64_t build,
                                                                  const std::string& branch_tip,
                                                                  const sched::PinnedMerge& pinned);

/// How a triggered request ended, for a waiting step: its last build and that build's result.
struct TriggeredEnd {
    std::int64_t request = 0;
    std::string builder;
    std::int64_t build = 0; ///< 0: it ended without a build (cancelled while pending)
    BuildResult result = BuildResult::Success;
};

/// The answer to a waiting trigger step once every one of `requests` has an end: the worst
/// result, and a line naming each (builder, request, build, result). nullopt while some has
/// none. Pure.
[[nodiscard]] std::optional<protocol::Triggered>
wait_answer(std::int64_t build,
            int step,
            const std::vector<std::int64_t>& requests,
            const std::map<std::int64_t, TriggeredEnd>& ends);

class Triggers {
public:
    struct Parts {
        const config::Config& config;
        const Clock& clock;
        StoreWrites& writes;
        WorkerRegistry& workers;
        RunningBuilds& running;
        Reports& reports;           ///< told of the requests queued
        std::function<void()> wake; ///< the dispatcher: requests were queued
    };
    explicit Triggers(Parts parts) : p_(std::move(parts)) {}

    /// Build `build`, running on `worker`, reached step `step` (a Trigger message).
    void ask(const std::string& worker, std::int64_t build, int step);
    /// A request ended for good (not retry): its build's result, or Cancelled with build 0
    /// for a request cancelled while pending. Called on the StoreWrites thread (a build's end)
    /// or once the cancel is stored.
    void ended(const TriggeredEnd& end);
    /// Build `build` ended: its waiting steps are forgotten.
    void build_ended(std::int64_t build);

private:
    struct Waiting {
        std::int64_t build = 0;
        int step = 0;
        std::string worker;
        std::vector<std::int64_t> requests;
        std::map<std::int64_t, TriggeredEnd> ends;
    };
    // The store work of one ask, on the StoreWrites thread.
    Status queue(store::Store& store,
                 const std::string& worker,
                 const store::Build& build,
                 int step,
                 const config::Trigger& trigger);
    void answer(const std::string& worker, const protocol::Triggered& triggered);

    Parts p_;
    std::mutex mutex_;
    std::vector<Waiting> waiting_;
};

} // namespace ci::master
