#include <chrono>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ci/core/clock.h>

using namespace std::chrono_literals;

TEST_CASE("clock: manual clock moves only when told") {
    const ci::WallTime start = ci::WallTime{} + 1'700'000'000s;
    ci::ManualClock clock(start);
    const auto mono_start = clock.monotonic();
    CHECK(clock.now() == start);

    clock.advance(1500ms);
    CHECK(clock.now() - start == 1500ms);
    CHECK(clock.monotonic() - mono_start == 1500ms);

    SUBCASE("set moves only the wall clock") {
        clock.set(start - 10s);
        CHECK(clock.now() == start - 10s);
        CHECK(clock.monotonic() - mono_start == 1500ms);
    }
}

TEST_CASE("clock: manual clock is safe to advance from several threads") {
    ci::ManualClock clock;
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                clock.advance(1ms);
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(clock.now().time_since_epoch() == 4000ms);
}

TEST_CASE("clock: system clock follows the operating system") {
    const auto& clock = ci::SystemClock::instance();
    const auto before = std::chrono::system_clock::now();
    const auto now = clock.now();
    CHECK(now >= before);
    CHECK(now - before < 5s);
    const auto m1 = clock.monotonic();
    const auto m2 = clock.monotonic();
    CHECK(m2 >= m1);
}
