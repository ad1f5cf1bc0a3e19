// Prometheus text exposition of the master's metrics.

#include <fmt/format.h>

#include "master/metrics.h"

namespace ci::master {

namespace {

// A label value: backslash, double quote and newline escaped.
std::string label(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void by_builder(std::string& out, std::string_view name, const std::map<std::string, int>& values) {
    for (const auto& [builder, value] : values) {
        out += fmt::format("{}{{builder=\"{}\"}} {}\n", name, label(builder), value);
    }
}

// builder="..",worker_class="..",branch_type="..": the labels of a finished build.
std::string build_labels(const BuildLabels& labels) {
    return fmt::format(R"(builder="{}",worker_class="{}",branch_type="{}")",
                       label(labels.builder),
                       label(labels.worker_class),
                       label(labels.branch_type));
}

void durations(std::string& out, const std::map<BuildLabels, Metrics::Histogram>& histograms) {
    family(out, "ci_build_duration_seconds", "histogram", "How long builds ran.");
    for (const auto& [labels, histogram] : histograms) {
        const auto names = build_labels(labels);
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
            cumulative += histogram.buckets[i];
            out += fmt::format("ci_build_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                               names,
                               duration_buckets[i],
                               cumulative);
        }
        out += fmt::format(
            "ci_build_duration_seconds_bucket{{{},le=\"+Inf\"}} {}\n", names, histogram.count);
        out += fmt::format("ci_build_duration_seconds_sum{{{}}} {}\n", names, histogram.sum);
        out += fmt::format("ci_build_duration_seconds_count{{{}}} {}\n", names, histogram.count);
    }
}

} // namespace

std::string prometheus_text(const Metrics::Snapshot& counters, const Gauges& gauges) {
    std::string out;
    family(out, "ci_builds_pending", "gauge", "Build requests waiting for a worker.");
    by_builder(out, "ci_builds_pending", gauges.pending);
    family(out, "ci_builds_running", "gauge", "Builds running now.");
    by_builder(out, "ci_builds_running", gauges.running);
    family(out, "ci_builds_finished_total", "counter", "Builds finished since the master started.");
    for (const auto& [key, count] : counters.finished) {
        out += fmt::format("ci_builds_finished_total{{{},result=\"{}\"}} {}\n",
                           build_labels(key.first),
                           to_string(key.second),
                           count);
    }
    durations(out, counters.durations);
    family(out, "ci_workers_connected", "gauge", "Remote workers connected.");
    out += fmt::format("ci_workers_connected {}\n", gauges.workers_connected);
    family(out, "ci_webhooks_total", "counter", "Webhooks received, by outcome.");
    out += fmt::format("ci_webhooks_total{{outcome=\"accepted\"}} {}\n"
                       "ci_webhooks_total{{outcome=\"rejected\"}} {}\n"
                       "ci_webhooks_total{{outcome=\"duplicate\"}} {}\n",
                       counters.webhooks_accepted,
                       counters.webhooks_rejected,
                       counters.webhooks_duplicate);
    family(out,
           "ci_store_errors_total",
           "counter",
           "Writes to the state database that failed (each failed retry counts).");
    out += fmt::format("ci_store_errors_total {}\n", counters.store_errors);
    family(out,
           "ci_store_degraded",
           "gauge",
           "1 while writes to the state database fail and are being retried.");
    out += fmt::format("ci_store_degraded {}\n", gauges.store_degraded ? 1 : 0);
    const auto uploads = [&](std::string_view name,
                             std::string_view help,
                             std::uint64_t Metrics::UploadCounts::*member) {
        family(out, name, "counter", help);
        for (const auto& [builder, counts] : counters.uploads) {
            out += fmt::format("{}{{builder=\"{}\"}} {}\n", name, label(builder), counts.*member);
        }
    };
    uploads("ci_upload_bytes_total",
            "File bytes upload steps sent to the master (resumed bytes not counted again).",
            &Metrics::UploadCounts::bytes);
    uploads("ci_upload_files_total",
            "Files upload steps stored in the results.",
            &Metrics::UploadCounts::files);
    uploads("ci_upload_failures_total",
            "Uploads refused or failed (incomplete, SHA-256 mismatch, disk error).",
            &Metrics::UploadCounts::failures);
    family(out,
           "ci_results_bytes",
           "gauge",
           "Bytes of the files under DATA_DIR/results (as of the last sweep, plus uploads since).");
    out += fmt::format("ci_results_bytes {}\n", counters.results_bytes);
    if (!gauges.ec2_instances.empty()) {
        family(out, "ci_ec2_instances", "gauge", "EC2 instances of the latent pools, by state.");
        for (const auto& [key, count] : gauges.ec2_instances) {
            const auto& [worker_class, market, state] = key;
            out += fmt::format(R"(ci_ec2_instances{{class="{}",market="{}",state="{}"}} {})"
                               "\n",
                               label(worker_class),
                               label(market),
                               label(state),
                               count);
        }
        family(out,
               "ci_ec2_instance_seconds_total",
               "counter",
               "Seconds EC2 instances ran (pending to terminated) since the master started.");
        for (const auto& [key, seconds] : gauges.ec2_instance_seconds) {
            out += fmt::format(R"(ci_ec2_instance_seconds_total{{class="{}",market="{}"}} {})"
                               "\n",
                               label(key.first),
                               label(key.second),
                               seconds);
        }
    }
    return out;
}

} // namespace ci::master
