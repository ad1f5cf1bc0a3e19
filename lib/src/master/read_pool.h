#pragma once

// SQLite reads for the API on a few threads of their own, each with its own connection (WAL
// lets readers run beside the writer): a slow query never delays webhooks, /healthz or the
// workers, which share the HTTP and worker I/O threads. The threads and their connections
// start with the first read: an idle master pays for neither (issue 7's idle RSS budget).

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
    /// Reads the store at `path` (created and migrated already) on up to `threads` threads.
    ReadPool(std::filesystem::path path, unsigned threads)
        : path_(std::move(path)), threads_wanted_(std::max(1U, threads)) {}
    /// Runs what is queued, then stops the threads.
    ~ReadPool();
    ReadPool(const ReadPool&) = delete;
    ReadPool& operator=(const ReadPool&) = delete;

    /// Runs `read` on one of the pool's threads with that thread's connection. When the
    /// connection cannot be opened, `read` is dropped after logging why (a Reply it holds then
    /// answers 500).
    void post(std::function<void(store::Store&)> read);

private:
    void run();

    std::filesystem::path path_;
    unsigned threads_wanted_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::function<void(store::Store&)>> queue_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

} // namespace ci::master
