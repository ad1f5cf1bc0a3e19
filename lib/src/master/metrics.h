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
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/build_result.h>

namespace ci::master {

/// What a finished build is counted by besides its result. Every value comes from a bounded set:
/// the config's builders and worker classes, and three branch types.
struct BuildLabels {
    std::string builder;
    std::string worker_class; ///< the class of the worker that ran it ("" when unknown)
    std::string branch_type;  ///< "master", "release" or "other" (branch_type())
    friend auto operator<=>(const BuildLabels&, const BuildLabels&) = default;
};

/// The kind of branch a build of `repository` (a config name; empty: none) built: "master" for
/// the repository's default branch, "release" for release/* branches and release tags
/// (config::is_release_tag, also as a branch name), "other" for everything else (and for a
/// builder without a repository).
[[nodiscard]] std::string_view branch_type(const config::Config& config,
                                           const std::string& repository,
                                           const std::string& branch,
                                           bool is_tag);

/// Upper bounds of the build duration histogram's buckets, in seconds.
inline constexpr std::array<double, 11> duration_buckets{
    1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};

class Metrics {
public:
    /// A build ended with `result` after `seconds`.
    void build_finished(const BuildLabels& labels, BuildResult result, double seconds);

    std::atomic<std::uint64_t> webhooks_accepted{0};
    std::atomic<std::uint64_t> webhooks_rejected{0};
    std::atomic<std::uint64_t> webhooks_duplicate{0};
    /// Store writes that failed (each retry that fails counts again).
    std::atomic<std::uint64_t> store_errors{0};

    /// Upload steps (Uploads): file bytes a builder's uploads wrote, files they stored, uploads
    /// that failed (refused, incomplete, a SHA-256 mismatch, a disk error; not after_upload).
    void upload_received(const std::string& builder, std::uint64_t bytes);
    void upload_stored(const std::string& builder, std::uint64_t files);
    void upload_failed(const std::string& builder);
    /// The bytes under DATA_DIR/results: set by each sweep (at start, then hourly), increased
    /// by what uploads write in between.
    std::atomic<std::uint64_t> results_bytes{0};

    /// Upload counters of one builder.
    struct UploadCounts {
        std::uint64_t bytes = 0;
        std::uint64_t files = 0;
        std::uint64_t failures = 0;
    };

    struct Histogram {
        std::array<std::uint64_t, duration_buckets.size() + 1> buckets{}; // the last: +Inf
        double sum = 0;
        std::uint64_t count = 0;
    };
    struct Snapshot {
        std::map<std::pair<BuildLabels, BuildResult>, std::uint64_t> finished;
        std::map<BuildLabels, Histogram> durations;
        std::uint64_t webhooks_accepted = 0;
        std::uint64_t webhooks_rejected = 0;
        std::uint64_t webhooks_duplicate = 0;
        std::uint64_t store_errors = 0;
        std::map<std::string, UploadCounts> uploads; ///< by builder (those that uploaded)
        std::uint64_t results_bytes = 0;
    };
    [[nodiscard]] Snapshot snapshot();

private:
    std::mutex mutex_;
    std::map<std::pair<BuildLabels, BuildResult>, std::uint64_t> finished_;
    std::map<BuildLabels, Histogram> durations_;
    std::map<std::string, UploadCounts> uploads_;
};

/// The gauges /metrics shows besides the counters, read from their owners.
struct Gauges {
    std::map<std::string, int> pending; ///< by builder (every builder of the config listed)
    std::map<std::string, int> running; ///< by builder (every builder of the config listed)
    int workers_connected = 0;          ///< remote workers
    bool store_degraded = false;
    /// EC2 instances by (class, market, state); every EC2 class listed with zeros.
    std::map<std::tuple<std::string, std::string, std::string>, int> ec2_instances;
    /// Seconds EC2 instances ran since the master started, by (class, market).
    std::map<std::pair<std::string, std::string>, double> ec2_instance_seconds;
};

/// The Prometheus text exposition (version 0.0.4) of `counters` and `gauges`.
[[nodiscard]] std::string prometheus_text(const Metrics::Snapshot& counters, const Gauges& gauges);

} // namespace ci::master
