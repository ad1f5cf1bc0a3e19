#include "master/guards.h"

#include <algorithm>
#include <array>

#include <arpa/inet.h>
#include <fmt/format.h>

#include "core/ascii.h"
#include "master/json.h"

namespace ci::master {

FailureLimiter::FailureLimiter(std::string what, Policy policy)
    : what_(std::move(what)), policy_(policy), log_(policy.log_interval) {}

std::optional<std::chrono::seconds> FailureLimiter::blocked(const std::string& address,
                                                            Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    const auto found = records_.find(address_key(address));
    if (found == records_.end() || now >= found->second.blocked_until) {
        return std::nullopt;
    }
    // Rounded up: a client that waits what Retry-After says is let through.
    const auto left = found->second.blocked_until - now;
    return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(left));
}

void FailureLimiter::failed(const std::string& address, Clock::time_point now) {
    auto key = address_key(address);
    std::int64_t failures = 0;
    {
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
        failures = ++record.failures;
        record.last_failure = now;
        if (failures > policy_.free_failures) {
            // first_delay, doubled for each failure after the first that is not free; capped.
            const auto doublings = std::min<std::int64_t>(failures - policy_.free_failures - 1, 30);
            const auto delay = std::min<std::chrono::seconds>(
                policy_.first_delay * (std::int64_t{1} << doublings), policy_.max_delay);
            record.blocked_until = now + delay;
        }
    }
    if (const auto count = log_.count(now); count > 0) {
        log::warn("{}: {} in the last {} s (the last from {}, its failure {} in a row{})",
                  what_,
                  count,
                  policy_.log_interval.count(),
                  log::field(address, 64),
                  failures,
                  failures > policy_.free_failures ? "; it must wait before it tries again" : "");
    }
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

http::ServerResponse too_many_failures(std::chrono::seconds wait) {
    auto response = error_response(
        429,
        fmt::format("too many failed attempts from this address; try again in {} s", wait.count()));
    response.headers.emplace_back("Retry-After", std::to_string(wait.count()));
    return response;
}

namespace {

// "http://host:8010" -> "host:8010"; "" when `origin` has no scheme.
std::string_view origin_authority(std::string_view origin) {
    const auto scheme_end = origin.find("://");
    if (scheme_end == std::string_view::npos) {
        return {};
    }
    auto authority = origin.substr(scheme_end + 3);
    return authority.substr(0, authority.find('/'));
}

// The media type of a Content-Type value, without parameters or spaces: "application/json".
std::string_view media_type(std::string_view content_type) {
    content_type = content_type.substr(0, content_type.find(';'));
    const auto first = content_type.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = content_type.find_last_not_of(" \t");
    return content_type.substr(first, last - first + 1);
}

bool has_body(const http::ServerRequest& request) {
    const auto length = request.header("content-length");
    return (!length.empty() && length != "0") || !request.header("transfer-encoding").empty();
}

} // namespace

std::optional<http::ServerResponse> refuse_cross_site(const http::ServerRequest& request) {
    if (const auto site = request.header("sec-fetch-site");
        !site.empty() && !ascii_iequals(site, "same-origin") && !ascii_iequals(site, "none")) {
        return error_response(
            403,
            fmt::format("a request from another site is refused (Sec-Fetch-Site: {})",
                        log::field(site, 32)));
    }
    if (const auto origin = request.header("origin"); !origin.empty()) {
        const auto authority = origin_authority(origin);
        if (authority.empty() || !ascii_iequals(authority, request.header("host"))) {
            return error_response(403,
                                  fmt::format("a request from another origin is refused (Origin: "
                                              "{}; this is {})",
                                              log::field(origin, 100),
                                              log::field(request.header("host"), 100)));
        }
    }
    if (has_body(request) &&
        !ascii_iequals(media_type(request.header("content-type")), "application/json")) {
        return error_response(
            415,
            fmt::format("the body must be JSON sent as Content-Type: application/json (not "
                        "\"{}\")",
                        log::field(request.header("content-type"), 100)));
    }
    return std::nullopt;
}

} // namespace ci::master
