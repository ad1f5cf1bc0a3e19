#include "master/login_throttle.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/core/log.h>

namespace ci::master {

std::chrono::milliseconds LoginThrottle::delay(const std::string& address,
                                               Clock::time_point now) const {
    const auto found = addresses_.find(address);
    if (found == addresses_.end() || found->second.failures == 0 ||
        now - found->second.last > limits_.forget_after) {
        return std::chrono::milliseconds(0);
    }
    auto wait = limits_.first_delay;
    for (int i = 1; i < found->second.failures && wait < limits_.max_delay; ++i) {
        wait *= 2;
    }
    return std::min(wait, limits_.max_delay);
}

std::optional<std::string>
LoginThrottle::failed(const std::string& address, const std::string& name, Clock::time_point now) {
    if (!addresses_.contains(address) && addresses_.size() >= limits_.max_addresses) {
        // Forget the address whose last wrong proof is the oldest.
        const auto oldest = std::min_element(
            addresses_.begin(), addresses_.end(), [](const auto& a, const auto& b) {
                return a.second.last < b.second.last;
            });
        addresses_.erase(oldest);
    }
    auto& entry = addresses_[address];
    if (entry.failures > 0 && now - entry.last > limits_.forget_after) {
        entry = Address{};
    }
    ++entry.failures;
    entry.last = now;
    if (entry.logged && now - *entry.logged < limits_.log_interval) {
        ++entry.unlogged;
        return std::nullopt;
    }
    std::string line =
        fmt::format("worker connection from {}: refused \"{}\": unknown worker or wrong secret",
                    address,
                    log::field(name));
    if (entry.unlogged > 0) {
        line += fmt::format(" ({} more refused since the last such line)", entry.unlogged);
    }
    if (entry.failures > 1) {
        line += fmt::format(
            "; its next hello waits {} ms",
            std::chrono::duration_cast<std::chrono::milliseconds>(delay(address, now)).count());
    }
    entry.logged = now;
    entry.unlogged = 0;
    return line;
}

void LoginThrottle::succeeded(const std::string& address) {
    addresses_.erase(address);
}

} // namespace ci::master
