// Wrong proofs on the worker port, by address, with a manual clock: the delay doubles up to its
// cap and is forgotten after a quiet while or a good proof; log lines come once per interval
// with the count of those not logged; other addresses are not slowed; memory stays bounded.

#include <doctest/doctest.h>

#include "master/login_throttle.h"

using namespace std::chrono_literals;
using ci::master::LoginThrottle;

namespace {

const LoginThrottle::Clock::time_point t0{std::chrono::seconds(1000)};

} // namespace

TEST_CASE("login throttle: the delay doubles per wrong proof, up to its cap, per address") {
    LoginThrottle throttle;
    CHECK(throttle.delay("10.0.0.1", t0) == 0ms);
    (void)throttle.failed("10.0.0.1", "linux/0", t0);
    CHECK(throttle.delay("10.0.0.1", t0) == 250ms);
    (void)throttle.failed("10.0.0.1", "linux/0", t0);
    CHECK(throttle.delay("10.0.0.1", t0) == 500ms);
    for (int i = 0; i < 20; ++i) {
        (void)throttle.failed("10.0.0.1", "linux/0", t0);
    }
    CHECK(throttle.delay("10.0.0.1", t0) == 10000ms);
    CHECK(throttle.delay("10.0.0.2", t0) == 0ms); // another address is not slowed
    // A good proof clears it; so does a quiet while.
    throttle.succeeded("10.0.0.1");
    CHECK(throttle.delay("10.0.0.1", t0) == 0ms);
    (void)throttle.failed("10.0.0.3", "x", t0);
    (void)throttle.failed("10.0.0.3", "x", t0);
    CHECK(throttle.delay("10.0.0.3", t0 + 599s) == 500ms);
    CHECK(throttle.delay("10.0.0.3", t0 + 601s) == 0ms);
    (void)throttle.failed("10.0.0.3", "x", t0 + 601s);
    CHECK(throttle.delay("10.0.0.3", t0 + 601s) == 250ms); // counted from one again
}

TEST_CASE("login throttle: one log line per address per interval, with the count skipped") {
    LoginThrottle throttle;
    auto first = throttle.failed("10.0.0.1", "linux/0", t0);
    REQUIRE(first.has_value());
    CHECK(first->find("10.0.0.1") != std::string::npos);
    CHECK(first->find("\"linux/0\"") != std::string::npos);
    for (int i = 1; i <= 30; ++i) {
        CHECK_FALSE(throttle.failed("10.0.0.1", "linux/0", t0 + std::chrono::seconds(i)));
    }
    CHECK(throttle.failed("10.0.0.2", "linux/1", t0 + 5s).has_value()); // its own interval
    auto next = throttle.failed("10.0.0.1", "linux/0", t0 + 61s);
    REQUIRE(next.has_value());
    CHECK(next->find("30 more refused") != std::string::npos);
    CHECK(next->find("waits 10000 ms") != std::string::npos);
}

TEST_CASE("login throttle: addresses beyond the limit forget the oldest") {
    LoginThrottle throttle(LoginThrottle::Limits{250ms, 10000ms, 600s, 60s, 3});
    for (int i = 0; i < 5; ++i) {
        (void)throttle.failed("10.0.0." + std::to_string(i), "x", t0 + std::chrono::seconds(i));
    }
    CHECK(throttle.size() == 3);
    CHECK(throttle.delay("10.0.0.0", t0 + 5s) == 0ms); // forgotten
    CHECK(throttle.delay("10.0.0.4", t0 + 5s) == 250ms);
}
