#include "master/metrics.h"

#include <algorithm>

namespace ci::master {

void Metrics::build_finished(const std::string& builder, BuildResult result, double seconds) {
    const std::lock_guard lock(mutex_);
    ++finished_[{builder, result}];
    auto& histogram = durations_[builder];
    const auto bucket = static_cast<std::size_t>(
        std::ranges::lower_bound(duration_buckets, seconds) - duration_buckets.begin());
    ++histogram.buckets[bucket];
    histogram.sum += seconds;
    ++histogram.count;
}

Metrics::Snapshot Metrics::snapshot() {
    Snapshot out;
    {
        const std::lock_guard lock(mutex_);
        out.finished = finished_;
        out.durations = durations_;
    }
    out.webhooks_accepted = webhooks_accepted.load();
    out.webhooks_rejected = webhooks_rejected.load();
    out.webhooks_duplicate = webhooks_duplicate.load();
    out.store_errors = store_errors.load();
    return out;
}

} // namespace ci::master
