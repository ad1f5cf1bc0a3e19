#include "master/read_pool.h"

#include <ci/core/log.h>

namespace ci::master {

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
        if (threads_.size() < threads_wanted_) {
            threads_.emplace_back([this] { run(); });
        }
    }
    wake_.notify_one();
}

void ReadPool::run() {
    std::unique_ptr<store::Store> store;
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
            return;
        }
        auto read = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        if (!store) {
            if (auto opened = store::open_sqlite(path_)) {
                store = std::move(*opened);
            } else {
                log::error("API read: {}", opened.error().message);
            }
        }
        if (store) {
            read(*store);
        }
        read = nullptr; // a Reply it held answers (500) here, outside the lock
        lock.lock();
    }
}

} // namespace ci::master
