#include "master/failure_limiter.h"

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include <arpa/inet.h>

namespace ci::master {

FailureLimiter::FailureLimiter(std::string what, Policy policy)
    : what_(std::move(what)), policy_(policy) {}

std::chrono::milliseconds FailureLimiter::wait(const std::string& address, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    const auto found = records_.find(address_key(address));
    if (found == records_.end() || now >= found->second.blocked_until) {
        return std::chrono::milliseconds(0);
    }
    return std::chrono::ceil<std::chrono::milliseconds>(found->second.blocked_until - now);
}

std::optional<std::chrono::seconds> FailureLimiter::blocked(const std::string& address,
                                                            Clock::time_point now) {
    const auto left = wait(address, now);
    if (left.count() == 0) {
        return std::nullopt;
    }
    // Rounded up: a client that waits what Retry-After says is let through.
    return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(left));
}

FailureLimiter::Failure FailureLimiter::count_failure(const std::string& address,
                                                      Clock::time_point now) {
    auto key = address_key(address);
    Failure out;
    const std::lock_guard lock(mutex_);
    auto found = records_.find(key);
    if (found == records_.end()) {
        if (records_.size() >= policy_.max_addresses) {
            forget_oldest_locked(now);
        }
        found = records_.emplace(std::move(key), Record{}).first;
    }
    auto& record = found->second;
    if (record.failures > 0 && now - record.last_failure >= policy_.forget_after) {
        record = Record{};
    }
    out.failures = ++record.failures;
    record.last_failure = now;
    if (out.failures > policy_.free_failures) {
        // first_delay, doubled for each failure after the first that is not free; capped.
        const auto doublings = std::min<std::int64_t>(out.failures - policy_.free_failures - 1, 30);
        out.delay = std::min<std::chrono::milliseconds>(
            policy_.first_delay * (std::int64_t{1} << doublings), policy_.max_delay);
        record.blocked_until = now + out.delay;
    }
    if (!policy_.log_per_address) {
        if (last_line_ && now - *last_line_ < policy_.log_interval) {
            ++held_.count;
            held_.address = address;
            held_.failures = out.failures;
            held_.waits = out.delay.count() > 0;
        } else {
            out.log_count = held_.count + 1;
            out.log_span = held_.count > 0 ? span_locked(now) : std::chrono::seconds(0);
            last_line_ = now;
            held_ = Held{};
        }
    } else if (record.logged && now - *record.logged < policy_.log_interval) {
        ++record.unlogged;
    } else {
        out.log_count = record.unlogged + 1;
        record.logged = now;
        record.unlogged = 0;
    }
    return out;
}

void FailureLimiter::failed(const std::string& address, Clock::time_point now) {
    const auto failure = count_failure(address, now);
    if (failure.log_count > 0) {
        log_line(failure.log_count,
                 failure.log_span,
                 address,
                 failure.failures,
                 failure.delay.count() > 0);
    }
}

std::uint64_t FailureLimiter::flush(Clock::time_point now) {
    Held held;
    std::chrono::seconds span{0};
    {
        const std::lock_guard lock(mutex_);
        if (policy_.log_per_address || held_.count == 0 || !last_line_ ||
            now - *last_line_ < policy_.log_interval) {
            return 0;
        }
        span = span_locked(now);
        held = std::exchange(held_, Held{});
        last_line_ = now;
    }
    log_line(held.count, span, held.address, held.failures, held.waits);
    return held.count;
}

// The time since the last line, rounded up to whole seconds: the span held-back failures fell in.
std::chrono::seconds FailureLimiter::span_locked(Clock::time_point now) const {
    if (!last_line_) {
        return std::chrono::seconds(0);
    }
    return std::chrono::ceil<std::chrono::seconds>(now - *last_line_);
}

void FailureLimiter::log_line(std::uint64_t count,
                              std::chrono::seconds span,
                              const std::string& address,
                              std::int64_t failures,
                              bool waits) const {
    const auto* const wait_note = waits ? "; it must wait before it tries again" : "";
    if (count == 1 && span.count() == 0) {
        log::warn("{}: from {} (its failure {} in a row{})",
                  what_,
                  log::field(address, 64),
                  failures,
                  wait_note);
        return;
    }
    log::warn("{}: {} in the last {} s (the last from {}, its failure {} in a row{})",
              what_,
              count,
              span.count(),
              log::field(address, 64),
              failures,
              wait_note);
}

std::int64_t FailureLimiter::failures(const std::string& address, Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    const auto found = records_.find(address_key(address));
    if (found == records_.end() || now - found->second.last_failure >= policy_.forget_after) {
        return 0;
    }
    return found->second.failures;
}

void FailureLimiter::succeeded(const std::string& address) {
    const std::lock_guard lock(mutex_);
    if (const auto found = records_.find(address_key(address)); found != records_.end()) {
        records_.erase(found);
    }
}

std::size_t FailureLimiter::addresses() {
    const std::lock_guard lock(mutex_);
    return records_.size();
}

void FailureLimiter::forget_oldest_locked(Clock::time_point now) {
    // Forgotten first: those that may try again and failed longest ago. One pass; a tenth of the
    // table goes, so this runs once per max_addresses / 10 new addresses at most.
    std::vector<std::pair<Clock::time_point, std::string>> candidates;
    candidates.reserve(records_.size());
    for (const auto& [key, record] : records_) {
        const bool waiting = now < record.blocked_until;
        candidates.emplace_back(waiting ? record.blocked_until : record.last_failure, key);
    }
    const auto drop = std::max<std::size_t>(1, records_.size() / 10);
    std::nth_element(candidates.begin(),
                     candidates.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                     candidates.end());
    for (std::size_t i = 0; i < drop; ++i) {
        records_.erase(candidates[i].second);
    }
}

std::string address_key(const std::string& address) {
    std::array<unsigned char, 16> bytes{};
    if (address.find(':') == std::string::npos ||
        inet_pton(AF_INET6, address.c_str(), bytes.data()) != 1) {
        return address;
    }
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (inet_ntop(AF_INET6, bytes.data(), text.data(), text.size()) == nullptr) {
        return address;
    }
    return std::string(text.data()) + "/64";
}

} // namespace ci::master
