#pragma once

// Password hashes off the HTTP threads. A check of a password costs what its hash costs (scrypt
// at the default parameters: ~0.07 s of CPU and 32 MiB; PBKDF2 600,000: ~0.11 s), which would
// hold up every other connection of an HTTP thread (/healthz, the workers' pages). The router
// hands such checks here and answers the request when one is done, from a server thread.
//
// A global budget bounds what a flood of wrong passwords can cost: at most `threads` hashes run
// at once (so scrypt's memory stays at threads x 32 MiB), and at most `budget` checks are
// accepted in all, running and queued; beyond, post() refuses (the router answers 503 with
// Retry-After). The threads start with the first check: an idle master pays for none.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ci::master {

class HashPool {
public:
    /// The master's: 2 threads, 16 checks in all (docs/api.md).
    static constexpr unsigned default_threads = 2;
    static constexpr std::size_t default_budget = 16;

    HashPool(unsigned threads, std::size_t budget)
        : threads_wanted_(std::max(1U, threads)), budget_(std::max<std::size_t>(1, budget)) {}
    /// Runs what is queued, then stops the threads.
    ~HashPool();
    HashPool(const HashPool&) = delete;
    HashPool& operator=(const HashPool&) = delete;

    /// Runs `check` on one of the pool's threads; false (and `check` is dropped) when the
    /// budget is spent: `budget` checks are running or queued already. Thread-safe.
    [[nodiscard]] bool post(std::function<void()> check);
    /// Whether post() would refuse now (a hint: another thread may post or finish meanwhile).
    [[nodiscard]] bool full() const;
    /// Checks running or queued now.
    [[nodiscard]] std::size_t in_flight() const;
    [[nodiscard]] std::size_t budget() const { return budget_; }

private:
    void run();

    const unsigned threads_wanted_;
    const std::size_t budget_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void()>> queue_;
    std::size_t running_ = 0;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

} // namespace ci::master
