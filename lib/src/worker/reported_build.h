#pragma once

// A build reported as worker protocol messages: what ci-worker's agent (agent.cpp) and the
// master's local workers (lib/src/master/local_worker.cpp) both run. The build runner's callbacks
// (build::BuildObserver) become messages here, and only here: a field added to a step's messages
// is carried by adding it to the observer call and to the message in master/protocol.h.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <utility>

#include <ci/build/runner.h>

#include "master/protocol.h"

namespace ci::worker {

/// The master's answers to a step (protocol Triggered, UploadReady, UploadDone), handed from
/// the thread that reads them to the build that waits. Thread-safe.
class MasterAnswers {
public:
    /// Whether `message` is an answer to a step (one deliver() takes).
    [[nodiscard]] static bool is_answer(const master::protocol::Message& message);
    /// An answer arrived (kept until its build's step takes it; a later one for the same step
    /// replaces it).
    void deliver(master::protocol::Message answer);
    /// Waits for the answer to step `step` of build `build` until `deadline` or `stop`;
    /// nullopt when none came.
    [[nodiscard]] std::optional<master::protocol::Message>
    wait(std::int64_t build,
         int step,
         std::chrono::steady_clock::time_point deadline,
         const std::stop_token& stop);
    /// Drops what is left of build `build` (it ended).
    void forget(std::int64_t build);

private:
    std::mutex mutex_;
    std::condition_variable_any arrived_;
    std::map<std::pair<std::int64_t, int>, master::protocol::Message> answers_;
};

/// Runs one build (build::run_build) and reports it as protocol messages through `send`, in
/// order: StepStarted, LogChunk (numbered from 0 per step), CheckedOut, StepFinished, and
/// BuildFinished last. What ci-worker and the master's local workers both do. At a trigger
/// step it sends Trigger and waits for the master's Triggered in `answers`; at an upload step
/// it sends the files (worker/upload.h) and waits for UploadReady and UploadDone there (null:
/// trigger and upload steps end "exception"). Returns the outcome it reported. `send` is called
/// from the build's thread and from its log flusher's thread, never from both at once.
build::BuildOutcome run_reported_build(const build::BuildSpec& spec,
                                       const build::RunnerOptions& options,
                                       const std::function<void(master::protocol::Message)>& send,
                                       std::stop_token stop,
                                       MasterAnswers* answers = nullptr);

} // namespace ci::worker
