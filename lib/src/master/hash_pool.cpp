#include "master/hash_pool.h"

#include <exception>

#include <ci/core/log.h>

namespace ci::master {

HashPool::~HashPool() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    for (auto& thread : threads_) {
        thread.join();
    }
}

bool HashPool::post(std::function<void()> check) {
    {
        const std::lock_guard lock(mutex_);
        if (stopping_ || queue_.size() + running_ >= budget_) {
            return false;
        }
        queue_.push_back(std::move(check));
        if (threads_.size() < threads_wanted_) {
            threads_.emplace_back([this] { run(); });
        }
    }
    wake_.notify_one();
    return true;
}

bool HashPool::full() const {
    const std::lock_guard lock(mutex_);
    return queue_.size() + running_ >= budget_;
}

std::size_t HashPool::in_flight() const {
    const std::lock_guard lock(mutex_);
    return queue_.size() + running_;
}

void HashPool::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) {
            return;
        }
        auto check = std::move(queue_.front());
        queue_.pop_front();
        ++running_;
        lock.unlock();
        try {
            check();
        } catch (const std::exception& error) {
            log::error("password check threw: {}", error.what());
        }
        check = nullptr; // a Reply it held answers (500) here, outside the lock
        lock.lock();
        --running_;
    }
}

} // namespace ci::master
