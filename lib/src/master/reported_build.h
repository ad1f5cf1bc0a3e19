#pragma once

// A build reported as worker protocol messages: what ci-worker's agent (worker.cpp) and the
// master's local workers (local_worker.cpp) both run.

#include <functional>
#include <stop_token>

#include <ci/build/runner.h>

#include "master/protocol.h"

namespace ci::master {

/// Runs one build (build::run_build) and reports it as protocol messages through `send`, in
/// order: StepStarted, LogChunk (numbered from 0 per step), CheckedOut, StepFinished, and
/// BuildFinished last. What ci-worker and the master's local workers both do. Returns the
/// outcome it reported.
build::BuildOutcome run_reported_build(const build::BuildSpec& spec,
                                       const build::RunnerOptions& options,
                                       const std::function<void(protocol::Message)>& send,
                                       std::stop_token stop);

} // namespace ci::master
