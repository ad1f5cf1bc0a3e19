#include "master/log_redaction.h"

#include <limits>
#include <optional>
#include <utility>

namespace ci::master {

LogRedaction::LogRedaction(std::vector<std::string> secrets) : secrets_(std::move(secrets)) {
    std::erase_if(secrets_,
                  [](const std::string& secret) { return secret.size() < log::min_secret_length; });
}

std::string LogRedaction::feed(std::int64_t build,
                               int step,
                               const std::string& file,
                               std::int64_t sequence,
                               std::string_view text) {
    if (secrets_.empty()) {
        return std::string(text);
    }
    const std::lock_guard lock(mutex_);
    auto found = streams_.find(Key{build, step, file});
    if (found == streams_.end()) {
        found = streams_.emplace(Key{build, step, file}, Stream{log::StreamRedactor(secrets_), 0})
                    .first;
    }
    if (sequence < found->second.next_sequence) {
        // A resend (a worker that reconnected sends again what it has no ack for): the store
        // keeps the first copy and drops this one. Fed to the stream it would carry away the
        // text held back from the last chunk, and be dropped with it; redacted on its own, the
        // stream stays as it was.
        return redact_whole(text);
    }
    found->second.next_sequence = sequence + 1;
    return found->second.redactor.feed(text);
}

std::string LogRedaction::redact_whole(std::string_view text) const {
    log::StreamRedactor redactor(secrets_);
    auto redacted = redactor.feed(text);
    redacted += redactor.finish();
    return redacted;
}

std::vector<LogRedaction::Rest> LogRedaction::finish(std::int64_t build, int step) {
    return take(build, step);
}

std::vector<LogRedaction::Rest> LogRedaction::finish_build(std::int64_t build) {
    return take(build, std::nullopt);
}

std::vector<LogRedaction::Rest> LogRedaction::take(std::int64_t build, std::optional<int> step) {
    std::vector<Rest> rests;
    const std::lock_guard lock(mutex_);
    const Key first{build, step.value_or(std::numeric_limits<int>::min()), std::string()};
    for (auto it = streams_.lower_bound(first);
         it != streams_.end() && std::get<0>(it->first) == build &&
         (!step || std::get<1>(it->first) == *step);
         it = streams_.erase(it)) {
        auto text = it->second.redactor.finish();
        if (!text.empty()) {
            rests.push_back(Rest{std::get<2>(it->first),
                                 it->second.next_sequence,
                                 std::move(text),
                                 std::get<1>(it->first)});
        }
    }
    return rests;
}

} // namespace ci::master
