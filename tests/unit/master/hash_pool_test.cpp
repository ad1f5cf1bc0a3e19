// The password checks' pool (master/hash_pool.h): its budget counts running and queued checks,
// refuses beyond it, and takes checks again once they are done; the destructor runs what is
// queued. No timing: checks block on a latch the test opens.

#include <atomic>
#include <condition_variable>
#include <mutex>

#include <doctest/doctest.h>

#include "master/hash_pool.h"

namespace {

// A gate checks wait at until the test opens it.
class Gate {
public:
    void wait() {
        std::unique_lock lock(mutex_);
        ++waiting_;
        changed_.notify_all();
        changed_.wait(lock, [&] { return open_; });
    }
    void open() {
        const std::lock_guard lock(mutex_);
        open_ = true;
        changed_.notify_all();
    }
    // Blocks until `count` checks wait at the gate.
    void until_waiting(int count) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return waiting_ >= count; });
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int waiting_ = 0;
    bool open_ = false;
};

} // namespace

TEST_CASE("hash pool: the budget counts running and queued checks, and refuses beyond it") {
    Gate gate;
    std::atomic<int> done{0};
    {
        ci::master::HashPool pool(2, 5);
        CHECK(pool.budget() == 5);
        CHECK_FALSE(pool.full());
        const auto check = [&] {
            gate.wait();
            ++done;
        };
        for (int i = 0; i < 5; ++i) {
            CHECK(pool.post(check));
        }
        gate.until_waiting(2); // two run (the threads), three are queued
        CHECK(pool.in_flight() == 5);
        CHECK(pool.full());
        CHECK_FALSE(pool.post([&] { ++done; })); // refused: dropped, never run
        gate.open();
        while (pool.in_flight() > 0) {
            std::this_thread::yield();
        }
        CHECK(done == 5);
        CHECK_FALSE(pool.full());
        CHECK(pool.post(check)); // room again
        CHECK(pool.post(check));
    } // the destructor runs what is queued
    CHECK(done == 7);
}

TEST_CASE("hash pool: no more checks run at once than it has threads") {
    Gate gate;
    std::atomic<int> running{0};
    std::atomic<int> most{0};
    {
        ci::master::HashPool pool(1, 4);
        for (int i = 0; i < 4; ++i) {
            CHECK(pool.post([&] {
                const int now = ++running;
                most = std::max(most.load(), now);
                gate.wait();
                --running;
            }));
        }
        gate.until_waiting(1);
        CHECK(pool.in_flight() == 4);
        gate.open();
    }
    CHECK(most == 1);
}

TEST_CASE("hash pool: a check that throws is logged and frees its place") {
    ci::master::HashPool pool(1, 1);
    CHECK(pool.post([] { throw std::runtime_error("boom"); }));
    while (pool.in_flight() > 0) {
        std::this_thread::yield();
    }
    std::atomic<bool> ran{false};
    CHECK(pool.post([&] { ran = true; }));
    while (pool.in_flight() > 0) {
        std::this_thread::yield();
    }
    CHECK(ran);
}
