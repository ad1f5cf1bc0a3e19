#include "master/log_redaction.h"

#include <algorithm>
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
    std::vector<Rest> rests;
    const std::lock_guard lock(mutex_);
    for (auto it = streams_.lower_bound(Key{build, step, std::string()});
         it != streams_.end() && std::get<0>(it->first) == build && std::get<1>(it->first) == step;
         it = streams_.erase(it)) {
        auto text = it->second.redactor.finish();
        if (!text.empty()) {
            rests.push_back(
                Rest{std::get<2>(it->first), it->second.next_sequence, std::move(text)});
        }
    }
    return rests;
}

void LogRedaction::forget(std::int64_t build) {
    const std::lock_guard lock(mutex_);
    std::erase_if(streams_,
                  [build](const auto& entry) { return std::get<0>(entry.first) == build; });
}

} // namespace ci::master
