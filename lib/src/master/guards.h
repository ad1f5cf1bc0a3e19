#pragma once

// What the master's HTTP routes check before a request's body is read: who may keep guessing
// (FailureLimiter: wrong passwords and wrong webhook signatures, per address, with a delay that
// grows), and whether a request to a route that changes something comes from a page of another
// site (CSRF) or brings a body that is not JSON.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/log.h>
#include <ci/http/server.h>

namespace ci::master {

/// Counts failed attempts (a wrong password, a wrong signature) per client address (an IPv6
/// address by its /64) and makes an address that keeps failing wait: after `free_failures`
/// failures, each further one blocks the address for a delay that doubles from `first_delay`
/// up to `max_delay`. An address that has not failed for `forget_after` starts afresh, and so
/// does one that succeeds. Failures are logged once per `log_interval`, with their count.
/// Thread-safe.
class FailureLimiter {
public:
    using Clock = std::chrono::steady_clock;

    struct Policy {
        int free_failures = 5;
        std::chrono::seconds first_delay{1};
        std::chrono::seconds max_delay{60};
        std::chrono::seconds forget_after{600};
        std::chrono::seconds log_interval{10};
        /// Addresses remembered at most; beyond, the ones that failed longest ago are forgotten.
        std::size_t max_addresses = 10000;
    };

    /// `what` names the failure in the log: "wrong API password".
    explicit FailureLimiter(std::string what) : FailureLimiter(std::move(what), Policy{}) {}
    FailureLimiter(std::string what, Policy policy);

    /// How long `address` must still wait before it may try again; nullopt when it may now.
    [[nodiscard]] std::optional<std::chrono::seconds> blocked(const std::string& address,
                                                              Clock::time_point now = Clock::now());

    /// Counts a failure of `address` at `now`.
    void failed(const std::string& address, Clock::time_point now = Clock::now());

    /// Forgets the failures of `address` (it proved it knows the secret).
    void succeeded(const std::string& address);

    /// Addresses remembered now (for tests).
    [[nodiscard]] std::size_t addresses();

private:
    struct Record {
        std::int64_t failures = 0;
        Clock::time_point last_failure{};
        Clock::time_point blocked_until{};
    };

    void forget_oldest_locked(Clock::time_point now);

    const std::string what_;
    const Policy policy_;
    log::Throttle log_;
    std::mutex mutex_;
    std::map<std::string, Record, std::less<>> records_;
};

/// The key FailureLimiter counts `address` under: an IPv4 address as it is, an IPv6 address as
/// its /64 ("2001:db8:1:2::/64").
[[nodiscard]] std::string address_key(const std::string& address);

/// 429 with Retry-After: `address` failed too often and must wait `wait`.
[[nodiscard]] http::ServerResponse too_many_failures(std::chrono::seconds wait);

/// Checks a request to a route that changes something, before its body is read: a 403 when
/// `Sec-Fetch-Site` says another site sent it (anything but `same-origin` or `none`), or when its
/// `Origin` is `null` or names another host than its `Host`; a 415 when it has a body whose
/// Content-Type is not `application/json`. nullopt when it may go on. Clients that are not
/// browsers send neither header and pass.
[[nodiscard]] std::optional<http::ServerResponse>
refuse_cross_site(const http::ServerRequest& request);

} // namespace ci::master
