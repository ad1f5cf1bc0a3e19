#pragma once

// SQLite reads for the API on a few threads of their own, each with its own connection (WAL
// lets readers run beside the writer): a slow query never delays webhooks, /healthz or the
// workers, which share the HTTP and worker I/O threads.

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <ci/core/error.h>
#include <ci/store/store.h>

namespace ci::master {

class ReadPool {
public:
    /// Opens `threads` connections to the store at `path` (created and migrated already).
    [[nodiscard]] static Result<std::unique_ptr<ReadPool>> open(const std::filesystem::path& path,
                                                                unsigned threads);
    /// Runs what is queued, then stops the threads.
    ~ReadPool();
    ReadPool(const ReadPool&) = delete;
    ReadPool& operator=(const ReadPool&) = delete;

    /// Runs `read` on one of the pool's threads with that thread's connection.
    void post(std::function<void(store::Store&)> read);

private:
    ReadPool() = default;
    void run(store::Store& store);

    std::vector<std::unique_ptr<store::Store>> connections_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void(store::Store&)>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

} // namespace ci::master
