#include "master/read_pool.h"

namespace ci::master {

Result<std::unique_ptr<ReadPool>> ReadPool::open(const std::filesystem::path& path,
                                                 unsigned threads) {
    std::unique_ptr<ReadPool> pool(new ReadPool());
    for (unsigned i = 0; i < std::max(1U, threads); ++i) {
        auto connection = store::open_sqlite(path);
        if (!connection) {
            return fail(connection.error());
        }
        pool->connections_.push_back(std::move(*connection));
    }
    for (auto& connection : pool->connections_) {
        pool->threads_.emplace_back(
            [raw = pool.get(), store = connection.get()] { raw->run(*store); });
    }
    return pool;
}

ReadPool::~ReadPool() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) {
        thread.join();
    }
}

void ReadPool::post(std::function<void(store::Store&)> read) {
    {
        const std::lock_guard lock(mutex_);
        queue_.push_back(std::move(read));
    }
    wake_.notify_one();
}

void ReadPool::run(store::Store& store) {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
            return;
        }
        auto read = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        read(store);
        lock.lock();
    }
}

} // namespace ci::master
