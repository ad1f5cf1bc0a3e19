#pragma once

// A worker's build log in batches: output of a step is gathered into chunks of up to max_bytes,
// or sent once its oldest byte has waited max_delay, whichever comes first. The pure part: no
// thread, no clock (the caller passes the time); run_reported_build (worker/reported_build.cpp)
// wraps it with a thread that honours deadline().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "master/protocol.h"

namespace ci::worker::detail {

/// When a batch is sent.
struct LogBatchLimits {
    std::size_t max_bytes = std::size_t{64} * 1024; ///< a chunk's text is never longer
    std::chrono::milliseconds max_delay{100};       ///< no output waits longer than this
};

/// The pending output of one build, and the numbering of its chunks (0, 1, 2, ... per step).
class LogBatch {
public:
    using TimePoint = std::chrono::steady_clock::time_point;

    explicit LogBatch(std::int64_t build, LogBatchLimits limits = {});

    /// Adds `text` of `step` at `now`. Returns the chunks to send now, in order: what was pending
    /// for another step first, then every full chunk (max_bytes; cut after the last newline
    /// inside it when there is one in its second half, so that lines stay whole).
    [[nodiscard]] std::vector<master::protocol::LogChunk>
    add(int step, std::string_view text, TimePoint now);

    /// Everything pending as one chunk when its oldest byte has waited max_delay at `now`.
    [[nodiscard]] std::optional<master::protocol::LogChunk> due(TimePoint now);

    /// Everything pending as one chunk, whatever its age (before any other message).
    [[nodiscard]] std::optional<master::protocol::LogChunk> take();

    /// When due() will return a chunk; nullopt while nothing is pending.
    [[nodiscard]] std::optional<TimePoint> deadline() const;

private:
    master::protocol::LogChunk chunk(std::size_t length);

    std::int64_t build_;
    LogBatchLimits limits_;
    int step_ = 0;
    std::string pending_;
    TimePoint oldest_{};                        // when the oldest pending byte arrived
    std::map<int, std::int64_t> next_sequence_; // by step
};

} // namespace ci::worker::detail
