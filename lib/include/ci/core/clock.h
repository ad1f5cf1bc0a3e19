#pragma once

/// \file
/// Time as an injected dependency. Code that schedules or signs asks a Clock; tests give it a
/// ManualClock and move time by hand, so no test sleeps to see a timer fire.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ci {

/// Wall-clock instants: what is stored, signed (SigV4 dates) and shown to users.
using WallTime = std::chrono::system_clock::time_point;
/// Monotonic instants: what timeouts and durations are measured with.
using MonoTime = std::chrono::steady_clock::time_point;

/// A source of time. Implementations are thread-safe.
class Clock {
public:
    virtual ~Clock() = default;
    /// The current wall-clock time (UTC).
    [[nodiscard]] virtual WallTime now() const = 0;
    /// The current monotonic time; never goes backwards.
    [[nodiscard]] virtual MonoTime monotonic() const = 0;
};

/// The operating system's clocks.
class SystemClock final : public Clock {
public:
    [[nodiscard]] WallTime now() const override { return std::chrono::system_clock::now(); }
    [[nodiscard]] MonoTime monotonic() const override { return std::chrono::steady_clock::now(); }

    /// A process-wide instance, for code that has no clock injected.
    [[nodiscard]] static const SystemClock& instance() noexcept;
};

/// A clock that moves only when told to: its wall and monotonic times advance together.
/// Thread-safe: advance() may race with now() from other threads.
class ManualClock final : public Clock {
public:
    /// Starts at `start` (wall) and at an arbitrary fixed monotonic instant.
    explicit ManualClock(WallTime start = WallTime{}) noexcept
        : wall_ns_(std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch())
                       .count()) {}

    [[nodiscard]] WallTime now() const override {
        return WallTime{std::chrono::duration_cast<WallTime::duration>(
            std::chrono::nanoseconds{wall_ns_.load(std::memory_order_acquire)})};
    }
    [[nodiscard]] MonoTime monotonic() const override {
        return MonoTime{std::chrono::duration_cast<MonoTime::duration>(
            std::chrono::nanoseconds{mono_ns_.load(std::memory_order_acquire)})};
    }

    /// Moves both clocks forward by `step` (which must not be negative).
    void advance(std::chrono::nanoseconds step) noexcept {
        wall_ns_.fetch_add(step.count(), std::memory_order_acq_rel);
        mono_ns_.fetch_add(step.count(), std::memory_order_acq_rel);
    }

    /// Sets the wall clock (e.g. to a SigV4 test vector's date); the monotonic clock is untouched.
    void set(WallTime when) noexcept {
        wall_ns_.store(
            std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count(),
            std::memory_order_release);
    }

private:
    std::atomic<std::int64_t> wall_ns_;
    std::atomic<std::int64_t> mono_ns_{0};
};

} // namespace ci
