#pragma once

// Failed attempts (a wrong password or webhook signature on the HTTP port, a wrong proof on the
// worker port) per client address, and the wait that makes an address that keeps failing slow:
// the one implementation both ports use, with a policy each.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <ci/core/log.h>

namespace ci::master {

/// Counts failed attempts per client address (an IPv6 address by its /64, see address_key())
/// and makes an address that keeps failing wait: after `free_failures` failures, each further
/// one makes the address wait a delay that doubles from `first_delay` up to `max_delay`,
/// counted from that failure. An address that has not failed for `forget_after` starts afresh,
/// and so does one that succeeds. Failures are logged once per `log_interval` with a count: in
/// all, or per address. In all: the first failure after a quiet interval is logged at once, the
/// ones after it in the interval are held back and logged with their true count and span by the
/// next failure after the interval or by flush() (the master calls it periodically), whichever
/// comes first. Memory is bounded (`max_addresses`). Thread-safe.
class FailureLimiter {
public:
    using Clock = std::chrono::steady_clock;

    struct Policy {
        int free_failures = 5;
        std::chrono::milliseconds first_delay{1000};
        std::chrono::milliseconds max_delay{60000};
        std::chrono::seconds forget_after{600};
        std::chrono::seconds log_interval{10};
        /// true: at most one line per address per interval; false: one line per interval.
        bool log_per_address = false;
        /// Addresses remembered at most; beyond, the ones that failed longest ago are forgotten.
        std::size_t max_addresses = 10000;
    };

    /// The HTTP port's wrong passwords and webhook signatures: 5 free, then 1 s doubling to
    /// 60 s, one line per 10 s.
    [[nodiscard]] static Policy http_policy() { return Policy{}; }
    /// Wrong passwords per address, beside the stricter count per (address, user): 30 free,
    /// then 1 s doubling to 60 s.
    [[nodiscard]] static Policy address_policy() {
        Policy policy;
        policy.free_failures = 30;
        return policy;
    }
    /// The worker port's wrong proofs: none free, 250 ms doubling to 10 s, one line per
    /// address per 60 s.
    [[nodiscard]] static Policy worker_policy() {
        return Policy{0,
                      std::chrono::milliseconds(250),
                      std::chrono::milliseconds(10000),
                      std::chrono::seconds(600),
                      std::chrono::seconds(60),
                      true,
                      10000};
    }

    /// What a failure did.
    struct Failure {
        std::int64_t failures = 0;          ///< in a row from this address, this one included
        std::chrono::milliseconds delay{0}; ///< the wait it set (0: still a free one)
        std::uint64_t log_count = 0;        ///< a line is due: the failures it reports; else 0
        /// With log_count: the time since the line before (the span those failures fell in);
        /// 0 when no failure was held back (the line reports this one alone).
        std::chrono::seconds log_span{0};
    };

    /// `what` names the failure in the lines failed() logs: "wrong API password".
    FailureLimiter(std::string what, Policy policy);
    explicit FailureLimiter(std::string what) : FailureLimiter(std::move(what), http_policy()) {}

    /// How long `address` must still wait before it may try again; 0 when it may now.
    [[nodiscard]] std::chrono::milliseconds wait(const std::string& address,
                                                 Clock::time_point now = Clock::now());
    /// wait() in whole seconds, rounded up (what Retry-After says); nullopt when it may now.
    [[nodiscard]] std::optional<std::chrono::seconds> blocked(const std::string& address,
                                                              Clock::time_point now = Clock::now());

    /// Counts a failure of `address` at `now` and logs a line when one is due: "WHAT: from
    /// ADDRESS (its failure N in a row...)" for the first failure after a quiet interval,
    /// "WHAT: N in the last S s (the last from ADDRESS, ...)" with the ones held back since the
    /// last line.
    void failed(const std::string& address, Clock::time_point now = Clock::now());
    /// Logs the failures failed() held back once `log_interval` has passed since the last line
    /// ("WHAT: N in the last S s", S the true time since that line). Returns how many it
    /// logged (0: none held, or the interval has not passed). Not for the per-address policy
    /// (its caller logs its own lines).
    std::uint64_t flush(Clock::time_point now = Clock::now());
    /// Counts a failure without logging: the caller logs its own line when `log_count` > 0.
    [[nodiscard]] Failure count_failure(const std::string& address, Clock::time_point now);

    /// The failures in a row of `address` that are still remembered (0: none).
    [[nodiscard]] std::int64_t failures(const std::string& address,
                                        Clock::time_point now = Clock::now());

    /// Forgets the failures of `address` (it proved it knows the secret).
    void succeeded(const std::string& address);

    /// Addresses remembered now (for tests).
    [[nodiscard]] std::size_t addresses();

private:
    struct Record {
        std::int64_t failures = 0;
        Clock::time_point last_failure{};
        Clock::time_point blocked_until{};
        std::optional<Clock::time_point> logged; ///< per-address logging: the last line
        std::uint64_t unlogged = 0;              ///< per-address logging: failures since then
    };

    /// Failures held back from the lines in all (not per address).
    struct Held {
        std::uint64_t count = 0;
        std::string address;       ///< the last one's
        std::int64_t failures = 0; ///< in a row from it
        bool waits = false;        ///< it must wait before it tries again
    };

    void forget_oldest_locked(Clock::time_point now);
    [[nodiscard]] std::chrono::seconds span_locked(Clock::time_point now) const;
    void log_line(std::uint64_t count,
                  std::chrono::seconds span,
                  const std::string& address,
                  std::int64_t failures,
                  bool waits) const;

    const std::string what_;
    const Policy policy_;
    std::mutex mutex_;
    std::optional<Clock::time_point> last_line_; ///< in all: when the last line was logged
    Held held_;
    std::map<std::string, Record, std::less<>> records_;
};

/// The key FailureLimiter counts `address` under: an IPv4 address as it is, an IPv6 address as
/// its /64 ("2001:db8:1:2::/64").
[[nodiscard]] std::string address_key(const std::string& address);

} // namespace ci::master
