#include "worker/log_batch.h"

#include <utility>

namespace ci::worker::detail {

LogBatch::LogBatch(std::int64_t build, LogBatchLimits limits) : build_(build), limits_(limits) {}

std::vector<master::protocol::LogChunk>
LogBatch::add(int step, std::string_view text, TimePoint now) {
    std::vector<master::protocol::LogChunk> out;
    if (step != step_) {
        if (auto rest = take()) {
            out.push_back(std::move(*rest));
        }
        step_ = step;
    }
    if (text.empty()) {
        return out;
    }
    if (pending_.empty()) {
        oldest_ = now;
    }
    pending_.append(text);
    while (pending_.size() >= limits_.max_bytes) {
        auto length = limits_.max_bytes;
        const auto newline = pending_.rfind('\n', limits_.max_bytes - 1);
        if (newline != std::string::npos && newline + 1 >= limits_.max_bytes / 2) {
            length = newline + 1;
        }
        out.push_back(chunk(length));
    }
    // What is left keeps the time of the oldest byte: the delay bound holds for all of it.
    return out;
}

std::optional<master::protocol::LogChunk> LogBatch::due(TimePoint now) {
    if (pending_.empty() || now - oldest_ < limits_.max_delay) {
        return std::nullopt;
    }
    return take();
}

std::optional<master::protocol::LogChunk> LogBatch::take() {
    if (pending_.empty()) {
        return std::nullopt;
    }
    return chunk(pending_.size());
}

std::optional<LogBatch::TimePoint> LogBatch::deadline() const {
    if (pending_.empty()) {
        return std::nullopt;
    }
    return oldest_ + limits_.max_delay;
}

master::protocol::LogChunk LogBatch::chunk(std::size_t length) {
    master::protocol::LogChunk out{build_, step_, next_sequence_[step_]++, {}};
    if (length == pending_.size()) {
        out.text = std::move(pending_);
        pending_.clear();
    } else {
        out.text = pending_.substr(0, length);
        pending_.erase(0, length);
    }
    return out;
}

} // namespace ci::worker::detail
