#pragma once

// The master's writes to its store that nobody waits for (a build's steps, its checkout, its
// end, worker records, log chunks): queued in order and written on a thread of their own, so
// that no lock of the master waits for the disk. A write that fails is never dropped: it is
// logged naming what it holds back, counted (ci_store_errors_total), and retried with backoff
// (one log line per interval, with a count) together with everything queued after it, in
// order; meanwhile the store is degraded (/healthz answers 503). It recovers by itself when a
// retry succeeds. Becoming degraded is told at once (on_degraded: the operators' stream).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ci/core/error.h>
#include <ci/store/store.h>

#include "master/metrics.h"

namespace ci::master {

class StoreWrites {
public:
    struct Options {
        std::chrono::milliseconds first_retry{200};
        std::chrono::milliseconds max_retry{5000};
        /// A failing write is logged once per this interval (with how many writes wait).
        std::chrono::milliseconds report_every{10000};
    };
    /// Starts the writer thread. `store` and `metrics` must outlive it.
    StoreWrites(store::Store& store, Metrics& metrics, Options options);
    StoreWrites(store::Store& store, Metrics& metrics) : StoreWrites(store, metrics, Options{}) {}
    /// Stops the thread (see stop()).
    ~StoreWrites();
    StoreWrites(const StoreWrites&) = delete;
    StoreWrites& operator=(const StoreWrites&) = delete;

    /// Queues a write. `what` says what it stores ("the end of build 12"), for the log when it
    /// fails. `write` runs on the writer thread, after every write queued before it has
    /// succeeded; `then` runs there once it has.
    void post(std::string what,
              std::function<Status(store::Store&)> write,
              std::function<void()> then = {});

    /// Stops the thread after the write in progress: no queued write runs after this returns
    /// (their callbacks may name parts that are about to go); what is left is logged as lost.
    /// Call drain() first. Idempotent; post() after it queues nothing that runs.
    void stop();

    /// Writes what is queued, retrying until `deadline`. Returns what could not be written.
    [[nodiscard]] std::vector<std::string> drain(std::chrono::steady_clock::time_point deadline);

    /// Another writer of the same store (the ingestor) reports how its last write went: a
    /// failure keeps the store degraded until a write (its own or one of ours) succeeds again.
    void note_other_write(const Status& status);

    /// Called once each time the store becomes degraded (a write failed after writes worked),
    /// with the error, on the thread whose write failed, outside this object's lock; at most
    /// once per `quiet` (a disk that fails on and off is one report). Must not block.
    void on_degraded(std::function<void(const std::string&)> callback,
                     std::chrono::milliseconds quiet = std::chrono::minutes(5));

    /// True while a write fails (ours or another writer's); the error, for /healthz.
    [[nodiscard]] std::optional<std::string> degraded();
    /// Writes queued and not yet done.
    [[nodiscard]] std::size_t queued();

private:
    struct Write {
        std::string what;
        std::function<Status(store::Store&)> write;
        std::function<void()> then;
    };
    void run();
    void failed(const Write& write, const Error& error, std::chrono::milliseconds retry);
    // With the lock held, when a write just failed: the callback to call once the lock is
    // released (empty when the store was degraded already, or reported too recently).
    std::function<void()> becoming_degraded(const std::string& error);

    store::Store& store_;
    Metrics& metrics_;
    Options options_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::deque<Write> queue_;
    bool writing_ = false; // the front is being written
    bool stopping_ = false;
    std::optional<std::string> our_error_;
    std::optional<std::string> other_error_;
    std::chrono::steady_clock::time_point last_report_{};
    std::uint64_t failures_since_report_ = 0;
    std::function<void(const std::string&)> on_degraded_;
    std::chrono::milliseconds degraded_quiet_{0};
    std::optional<std::chrono::steady_clock::time_point> degraded_told_;
    std::thread thread_;
};

} // namespace ci::master
