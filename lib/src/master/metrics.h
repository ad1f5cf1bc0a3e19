#pragma once

// The master's counters for /metrics, since it started. Owns its lock; every member is
// thread-safe. The Prometheus text is rendered in metrics_text.cpp from a snapshot, with the
// gauges (pending, running, workers) the caller reads from their owners.

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <ci/core/build_result.h>

namespace ci::master {

/// Upper bounds of the build duration histogram's buckets, in seconds.
inline constexpr std::array<double, 11> duration_buckets{
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};

class Metrics {
public:
    /// A build of `builder` ended with `result` after `seconds`.
    void build_finished(const std::string& builder, BuildResult result, double seconds);

    std::atomic<std::uint64_t> webhooks_accepted{0};
    std::atomic<std::uint64_t> webhooks_rejected{0};
    std::atomic<std::uint64_t> webhooks_duplicate{0};
    /// Store writes that failed (each retry that fails counts again).
    std::atomic<std::uint64_t> store_errors{0};

    struct Histogram {
        std::array<std::uint64_t, duration_buckets.size() + 1> buckets{}; // the last: +Inf
        double sum = 0;
        std::uint64_t count = 0;
    };
    struct Snapshot {
        std::map<std::pair<std::string, BuildResult>, std::uint64_t> finished;
        std::map<std::string, Histogram> durations;
        std::uint64_t webhooks_accepted = 0;
        std::uint64_t webhooks_rejected = 0;
        std::uint64_t webhooks_duplicate = 0;
        std::uint64_t store_errors = 0;
    };
    [[nodiscard]] Snapshot snapshot();

private:
    std::mutex mutex_;
    std::map<std::pair<std::string, BuildResult>, std::uint64_t> finished_;
    std::map<std::string, Histogram> durations_;
};

/// The gauges /metrics shows besides the counters, read from their owners.
struct Gauges {
    std::map<std::string, int> pending; ///< by builder (every builder of the config listed)
    std::map<std::string, int> running; ///< by builder (every builder of the config listed)
    int workers_connected = 0;          ///< remote workers
    bool store_degraded = false;
};

/// The Prometheus text exposition (version 0.0.4) of `counters` and `gauges`.
[[nodiscard]] std::string prometheus_text(const Metrics::Snapshot& counters, const Gauges& gauges);

} // namespace ci::master
