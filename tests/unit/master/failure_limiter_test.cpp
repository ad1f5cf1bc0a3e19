// The one limiter for failed attempts (master/failure_limiter.h) under both ports' policies, with
// a manual clock: the HTTP port's (5 free, then 1 s doubling to 60 s, one line per 10 s in all)
// and the worker port's (250 ms doubling to 10 s, one line per address per 60 s with the count
// not logged); delays counted from the failure, forgotten after a quiet while or a success,
// per address (IPv6 by /64); memory bounded.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/core/log.h>

#include "master/failure_limiter.h"

using namespace std::chrono_literals;
using ci::master::FailureLimiter;

namespace {

const FailureLimiter::Clock::time_point t0{std::chrono::seconds(1000)};

} // namespace

TEST_CASE("failure limiter, HTTP policy: five free failures, then 1 s doubling to 60 s") {
    FailureLimiter limiter("wrong passwords");
    for (int i = 0; i < 5; ++i) {
        const auto failure = limiter.count_failure("10.0.0.1", t0);
        CHECK(failure.delay == 0ms);
        CHECK_FALSE(limiter.blocked("10.0.0.1", t0).has_value());
    }
    CHECK(limiter.count_failure("10.0.0.1", t0).delay == 1000ms);
    REQUIRE(limiter.blocked("10.0.0.1", t0).has_value());
    CHECK(*limiter.blocked("10.0.0.1", t0) == 1s);
    CHECK_FALSE(limiter.blocked("10.0.0.1", t0 + 1s).has_value());
    CHECK(limiter.count_failure("10.0.0.1", t0 + 1s).delay == 2000ms);
    // Retry-After is rounded up: 2 s less 1 ms still says 1 s, never 0.
    CHECK(*limiter.blocked("10.0.0.1", t0 + 1s + 1999ms) == 1s);
    CHECK(*limiter.blocked("10.0.0.1", t0 + 1s + 1ms) == 2s);
    for (int i = 0; i < 40; ++i) {
        (void)limiter.count_failure("10.0.0.1", t0 + 2s);
    }
    CHECK(limiter.wait("10.0.0.1", t0 + 2s) == 60000ms);
    CHECK(limiter.wait("10.0.0.2", t0 + 2s) == 0ms); // another address is not slowed
    limiter.succeeded("10.0.0.1");
    CHECK(limiter.wait("10.0.0.1", t0 + 2s) == 0ms);
    CHECK(limiter.addresses() == 0);
}

TEST_CASE("failure limiter, worker policy: the delay doubles from the first wrong proof") {
    FailureLimiter limiter("wrong worker proofs", FailureLimiter::worker_policy());
    CHECK(limiter.wait("10.0.0.1", t0) == 0ms);
    CHECK(limiter.count_failure("10.0.0.1", t0).delay == 250ms);
    CHECK(limiter.wait("10.0.0.1", t0) == 250ms);
    CHECK(limiter.wait("10.0.0.1", t0 + 100ms) == 150ms); // what remains of it
    CHECK(limiter.count_failure("10.0.0.1", t0).delay == 500ms);
    for (int i = 0; i < 20; ++i) {
        (void)limiter.count_failure("10.0.0.1", t0);
    }
    CHECK(limiter.wait("10.0.0.1", t0) == 10000ms);
    CHECK(limiter.wait("10.0.0.2", t0) == 0ms);
    // A quiet while forgets: counted from one again.
    (void)limiter.count_failure("10.0.0.3", t0);
    CHECK(limiter.count_failure("10.0.0.3", t0 + 599s).delay == 500ms);
    CHECK(limiter.count_failure("10.0.0.3", t0 + 599s + 600s).delay == 250ms);
}

TEST_CASE("failure limiter: one line per interval in all, or per address with the count") {
    FailureLimiter global("wrong passwords");
    CHECK(global.count_failure("10.0.0.1", t0).log_count == 1);
    for (int i = 1; i <= 9; ++i) {
        CHECK(global.count_failure("10.0.0.1", t0 + std::chrono::seconds(i)).log_count == 0);
    }
    CHECK(global.count_failure("10.0.0.2", t0 + 9s).log_count == 0); // one line for all
    const auto line = global.count_failure("10.0.0.1", t0 + 10s);
    CHECK(line.log_count == 11);
    CHECK(line.log_span == 10s);

    FailureLimiter per_address("wrong worker proofs", FailureLimiter::worker_policy());
    CHECK(per_address.count_failure("10.0.0.1", t0).log_count == 1);
    for (int i = 1; i <= 30; ++i) {
        CHECK(per_address.count_failure("10.0.0.1", t0 + std::chrono::seconds(i)).log_count == 0);
    }
    CHECK(per_address.count_failure("10.0.0.2", t0 + 5s).log_count == 1); // its own interval
    const auto next = per_address.count_failure("10.0.0.1", t0 + 61s);
    CHECK(next.log_count == 31); // this one and the 30 not logged
    CHECK(next.failures == 32);
    CHECK(next.delay == 10000ms);
}

TEST_CASE("failure limiter: an IPv6 address counts by its /64; memory is bounded") {
    CHECK(ci::master::address_key("2001:db8:1:2::7") == "2001:db8:1:2::/64");
    CHECK(ci::master::address_key("10.0.0.1") == "10.0.0.1");
    CHECK(ci::master::address_key("not an address") == "not an address");
    FailureLimiter limiter("wrong worker proofs", FailureLimiter::worker_policy());
    (void)limiter.count_failure("2001:db8:1:2::7", t0);
    CHECK(limiter.wait("2001:db8:1:2:ffff::1", t0) == 250ms); // the same /64
    CHECK(limiter.wait("2001:db8:1:3::7", t0) == 0ms);

    auto policy = FailureLimiter::worker_policy();
    policy.max_addresses = 3;
    FailureLimiter small("wrong worker proofs", policy);
    for (int i = 0; i < 5; ++i) {
        (void)small.count_failure("10.0.0." + std::to_string(i), t0 + std::chrono::seconds(i));
    }
    CHECK(small.addresses() <= 3);
    CHECK(small.wait("10.0.0.0", t0 + 4s) == 0ms); // forgotten first: failed longest ago
    CHECK(small.wait("10.0.0.4", t0 + 4s) == 250ms);
}

namespace {

// The warnings logged while it lives.
class CapturedLog {
public:
    CapturedLog() {
        ci::log::set_sink([this](ci::log::Level level, std::string_view message) {
            if (level == ci::log::Level::Warn) {
                lines.emplace_back(message);
            }
        });
    }
    CapturedLog(const CapturedLog&) = delete;
    CapturedLog& operator=(const CapturedLog&) = delete;
    CapturedLog(CapturedLog&&) = delete;
    CapturedLog& operator=(CapturedLog&&) = delete;
    ~CapturedLog() { ci::log::set_sink({}); }
    std::vector<std::string> lines;
};

} // namespace

TEST_CASE("failure limiter: the first failure is logged at once, the held ones with their true "
          "span, by flush() when no failure follows") {
    const CapturedLog log;
    FailureLimiter limiter("wrong passwords");
    limiter.failed("10.0.0.1", t0);
    REQUIRE(log.lines.size() == 1);
    CHECK(log.lines[0] == "wrong passwords: from 10.0.0.1 (its failure 1 in a row)");
    limiter.failed("10.0.0.1", t0 + 2s);
    limiter.failed("10.0.0.2", t0 + 3s);
    CHECK(log.lines.size() == 1);       // held back
    CHECK(limiter.flush(t0 + 9s) == 0); // the interval has not passed
    CHECK(log.lines.size() == 1);
    // No failure follows: the periodic flush logs the two, over the 25 s since the last line.
    CHECK(limiter.flush(t0 + 25s) == 2);
    REQUIRE(log.lines.size() == 2);
    CHECK(log.lines[1] ==
          "wrong passwords: 2 in the last 25 s (the last from 10.0.0.2, its failure 1 in a row)");
    CHECK(limiter.flush(t0 + 60s) == 0); // nothing held
    // An hour later: logged at once, alone, not as "in the last 10 s".
    limiter.failed("10.0.0.3", t0 + 3600s);
    REQUIRE(log.lines.size() == 3);
    CHECK(log.lines[2] == "wrong passwords: from 10.0.0.3 (its failure 1 in a row)");
    // Held ones reported by the next failure after the interval, with the true span.
    limiter.failed("10.0.0.3", t0 + 3601s);
    limiter.failed("10.0.0.3", t0 + 3630s);
    REQUIRE(log.lines.size() == 4);
    CHECK(log.lines[3] ==
          "wrong passwords: 2 in the last 30 s (the last from 10.0.0.3, its failure 3 in a row)");
    // The per-address policy logs through its caller: flush has nothing to do there.
    FailureLimiter workers("wrong worker proofs", FailureLimiter::worker_policy());
    (void)workers.count_failure("10.0.0.1", t0);
    (void)workers.count_failure("10.0.0.1", t0 + 1s);
    CHECK(workers.flush(t0 + 120s) == 0);
}
