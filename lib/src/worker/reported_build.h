#pragma once

// A build reported as worker protocol messages: what ci-worker's agent (agent.cpp) and the
// master's local workers (lib/src/master/local_worker.cpp) both run. The build runner's callbacks
// (build::BuildObserver) become messages here, and only here: a field added to a step's messages
// is carried by adding it to the observer call and to the message in master/protocol.h.

#include <functional>
#include <stop_token>

#include <ci/build/runner.h>

#include "master/protocol.h"

namespace ci::worker {

/// Runs one build (build::run_build) and reports it as protocol messages through `send`, in
/// order: StepStarted, LogChunk (numbered from 0 per step), CheckedOut, StepFinished, and
/// BuildFinished last. What ci-worker and the master's local workers both do. Returns the
/// outcome it reported. `send` is called from the build's thread and from its log flusher's
/// thread, never from both at once.
build::BuildOutcome run_reported_build(const build::BuildSpec& spec,
                                       const build::RunnerOptions& options,
                                       const std::function<void(master::protocol::Message)>& send,
                                       std::stop_token stop);

} // namespace ci::worker
