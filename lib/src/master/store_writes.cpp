#include "master/store_writes.h"

#include <algorithm>

#include <ci/core/log.h>

namespace ci::master {

StoreWrites::StoreWrites(store::Store& store, Metrics& metrics, Options options)
    : store_(store), metrics_(metrics), options_(options), thread_([this] { run(); }) {}

StoreWrites::~StoreWrites() {
    stop();
}

void StoreWrites::stop() {
    {
        const std::lock_guard lock(mutex_);
        if (!thread_.joinable()) {
            return;
        }
        stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
    for (const auto& write : queue_) {
        log::error("store: not written, lost at shutdown: {}", write.what);
    }
}

void StoreWrites::post(std::string what,
                       std::function<Status(store::Store&)> write,
                       std::function<void()> then) {
    {
        const std::lock_guard lock(mutex_);
        queue_.push_back(Write{std::move(what), std::move(write), std::move(then)});
    }
    wake_.notify_one();
}

void StoreWrites::run() {
    auto retry = options_.first_retry;
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) {
            return; // what is left is reported lost (drain() first to write it)
        }
        writing_ = true;
        // The front stays queued until it is written: a failure keeps the order.
        auto& front = queue_.front();
        lock.unlock();
        auto status = front.write(store_);
        if (status && front.then) {
            front.then();
        }
        lock.lock();
        writing_ = false;
        if (status) {
            queue_.pop_front();
            if (our_error_ || other_error_) {
                // Any write that succeeds shows the disk works again, the ingestor's too.
                log::info("store: writes work again ({} queued)", queue_.size());
                our_error_.reset();
                other_error_.reset();
            }
            retry = options_.first_retry;
            idle_.notify_all();
            continue;
        }
        auto tell = becoming_degraded(status.error().message);
        failed(queue_.front(), status.error(), retry);
        idle_.notify_all();
        if (tell) {
            lock.unlock();
            tell();
            lock.lock();
        }
        // Back off; stopping cuts the wait short (the destructor reports what is left).
        if (wake_.wait_for(lock, retry, [&] { return stopping_; })) {
            return;
        }
        retry = std::min(retry * 2, options_.max_retry);
    }
}

// Called with the lock held.
void StoreWrites::failed(const Write& write, const Error& error, std::chrono::milliseconds retry) {
    ++metrics_.store_errors;
    ++failures_since_report_;
    our_error_ = error.message;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_report_ >= options_.report_every) {
        log::error("store: {} not written ({} failure(s) since the last report; {} write(s) "
                   "queued, retrying in {} ms): {}",
                   write.what,
                   failures_since_report_,
                   queue_.size(),
                   retry.count(),
                   error.message);
        last_report_ = now;
        failures_since_report_ = 0;
    }
}

std::vector<std::string> StoreWrites::drain(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    idle_.wait_until(lock, deadline, [&] { return queue_.empty() && !writing_; });
    std::vector<std::string> left;
    left.reserve(queue_.size());
    for (const auto& write : queue_) {
        left.push_back(write.what);
    }
    return left;
}

void StoreWrites::note_other_write(const Status& status) {
    std::function<void()> tell;
    {
        const std::lock_guard lock(mutex_);
        if (status) {
            if (other_error_) {
                log::info("store: the ingestor's writes work again");
            }
            other_error_.reset();
        } else {
            ++metrics_.store_errors;
            tell = becoming_degraded(status.error().message);
            other_error_ = status.error().message;
        }
    }
    if (tell) {
        tell();
    }
}

void StoreWrites::on_degraded(std::function<void(const std::string&)> callback,
                              std::chrono::milliseconds quiet) {
    const std::lock_guard lock(mutex_);
    on_degraded_ = std::move(callback);
    degraded_quiet_ = quiet;
}

std::function<void()> StoreWrites::becoming_degraded(const std::string& error) {
    if (our_error_ || other_error_ || !on_degraded_) {
        return {}; // degraded already: told when it began
    }
    const auto now = std::chrono::steady_clock::now();
    if (degraded_told_ && now - *degraded_told_ < degraded_quiet_) {
        return {};
    }
    degraded_told_ = now;
    return [callback = on_degraded_, error] { callback(error); };
}

std::optional<std::string> StoreWrites::degraded() {
    const std::lock_guard lock(mutex_);
    return our_error_ ? our_error_ : other_error_;
}

std::size_t StoreWrites::queued() {
    const std::lock_guard lock(mutex_);
    return queue_.size();
}

} // namespace ci::master
