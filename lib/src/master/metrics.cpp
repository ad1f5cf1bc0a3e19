#include "master/metrics.h"

#include <algorithm>

namespace ci::master {

std::string_view branch_type(const config::Config& config,
                             const std::string& repository,
                             const std::string& branch,
                             bool is_tag) {
    const auto found = config.repositories.find(repository);
    if (found == config.repositories.end()) {
        return "other";
    }
    if (!is_tag && branch == found->second.default_branch) {
        return "master";
    }
    if ((!is_tag && branch.starts_with("release/")) || config::is_release_tag(branch)) {
        return "release";
    }
    return "other";
}

void Metrics::build_finished(const BuildLabels& labels, BuildResult result, double seconds) {
    const std::lock_guard lock(mutex_);
    ++finished_[{labels, result}];
    auto& histogram = durations_[labels];
    const auto bucket = static_cast<std::size_t>(
        std::ranges::lower_bound(duration_buckets, seconds) - duration_buckets.begin());
    ++histogram.buckets[bucket];
    histogram.sum += seconds;
    ++histogram.count;
}

void Metrics::upload_received(const std::string& builder, std::uint64_t bytes) {
    results_bytes += bytes;
    const std::lock_guard lock(mutex_);
    uploads_[builder].bytes += bytes;
}

void Metrics::upload_stored(const std::string& builder, std::uint64_t files) {
    const std::lock_guard lock(mutex_);
    uploads_[builder].files += files;
}

void Metrics::upload_failed(const std::string& builder) {
    const std::lock_guard lock(mutex_);
    ++uploads_[builder].failures;
}

Metrics::Snapshot Metrics::snapshot() {
    Snapshot out;
    {
        const std::lock_guard lock(mutex_);
        out.finished = finished_;
        out.durations = durations_;
        out.uploads = uploads_;
    }
    out.results_bytes = results_bytes.load();
    out.webhooks_accepted = webhooks_accepted.load();
    out.webhooks_rejected = webhooks_rejected.load();
    out.webhooks_duplicate = webhooks_duplicate.load();
    out.store_errors = store_errors.load();
    return out;
}

} // namespace ci::master
