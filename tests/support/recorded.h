#pragma once

// What a local fake service accepted, recorded from its server thread and read by the test.

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace ci::test {

template <class T> class Recorded {
public:
    void add(T item) {
        const std::lock_guard lock(mutex_);
        items_.push_back(std::move(item));
    }
    [[nodiscard]] std::vector<T> all() {
        const std::lock_guard lock(mutex_);
        return items_;
    }
    /// Waits until at least `count` were recorded; false after `timeout`.
    bool wait_for(std::size_t count,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (all().size() < count && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return all().size() >= count;
    }

private:
    std::mutex mutex_;
    std::vector<T> items_;
};

} // namespace ci::test
