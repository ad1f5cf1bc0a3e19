#include "master/log_redaction.h"

#include <algorithm>
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
    found->second.next_sequence = std::max(found->second.next_sequence, sequence + 1);
    return found->second.redactor.feed(text);
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
