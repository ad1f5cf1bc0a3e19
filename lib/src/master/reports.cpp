#include "master/reports.h"

#include <fmt/format.h>

namespace ci::master {

Reports::Reports(const config::Config& config,
                 const Clock& clock,
                 std::vector<std::shared_ptr<report::Reporter>> reporters,
                 std::string base_url)
    : config_(config), clock_(clock), reporters_(std::move(reporters)),
      base_url_(std::move(base_url)) {
    while (base_url_.ends_with('/')) {
        base_url_.pop_back();
    }
}

std::string Reports::build_url(std::int64_t build) const {
    return fmt::format("{}/api/v1/builds/{}", base_url_, build);
}

report::BuildReport Reports::base(const store::BuildRequest& request,
                                  report::BuildEvent event) const {
    report::BuildReport out;
    out.event = event;
    out.request_id = request.id;
    out.builder = request.request.builder;
    out.repository = request.request.repository;
    out.branch = request.request.branch;
    if (out.branch.empty()) {
        if (const auto found = config_.repositories.find(out.repository);
            found != config_.repositories.end()) {
            out.branch = found->second.default_branch;
        }
    }
    out.revision = request.request.revision;
    out.properties = request.request.properties;
    out.at = clock_.now();
    return out;
}

std::vector<store::OutboxMessage> Reports::outbox(const report::BuildReport& report) {
    std::vector<store::OutboxMessage> out;
    for (const auto& reporter : reporters_) {
        auto more = reporter->outbox(report);
        out.insert(
            out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    return out;
}

void Reports::deliver(const report::BuildReport& report) {
    for (const auto& reporter : reporters_) {
        reporter->report(report);
    }
}

std::vector<store::OutboxMessage> Reports::request_outbox(const store::BuildRequest& request) {
    if (reporters_.empty()) {
        return {};
    }
    return outbox(base(request, report::BuildEvent::Requested));
}

void Reports::requested(const std::vector<store::BuildRequest>& requests) {
    if (reporters_.empty()) {
        return;
    }
    for (const auto& request : requests) {
        {
            const std::lock_guard lock(mutex_);
            if (started_requests_.erase(request.id) > 0) {
                continue; // its start was reported already
            }
        }
        deliver(base(request, report::BuildEvent::Requested));
    }
}

std::vector<store::OutboxMessage> Reports::start_outbox(const store::BuildRequest& request,
                                                        std::int64_t build) {
    if (reporters_.empty() || request.request.revision.empty()) {
        return {};
    }
    auto report = base(request, report::BuildEvent::Started);
    report.build_id = build;
    report.url = build_url(build);
    return outbox(report);
}

void Reports::started(const store::BuildRequest& request, std::int64_t build) {
    if (reporters_.empty()) {
        return;
    }
    auto report = base(request, report::BuildEvent::Started);
    report.build_id = build;
    report.url = build_url(build);
    const bool now = !report.revision.empty();
    {
        const std::lock_guard lock(mutex_);
        running_[build] = Running{report, now};
        started_requests_.insert(request.id);
    }
    if (now) {
        deliver(report);
    }
}

std::optional<report::BuildReport> Reports::checked_out(std::int64_t build,
                                                        const std::string& branch_tip) {
    if (reporters_.empty() || branch_tip.empty()) {
        return std::nullopt;
    }
    const std::lock_guard lock(mutex_);
    const auto found = running_.find(build);
    if (found == running_.end() || found->second.start_reported) {
        return std::nullopt;
    }
    found->second.report.revision = branch_tip;
    found->second.start_reported = true;
    return found->second.report;
}

void Reports::step_tests(std::int64_t build, const build::TestResults& tests) {
    if (reporters_.empty()) {
        return;
    }
    const std::lock_guard lock(mutex_);
    if (const auto found = running_.find(build); found != running_.end()) {
        auto& total = found->second.report.tests;
        total = total.value_or(build::TestResults{});
        total->add(tests);
    }
}

std::optional<report::BuildReport> Reports::finished(std::int64_t build, BuildResult result) {
    if (reporters_.empty()) {
        return std::nullopt;
    }
    report::BuildReport report;
    {
        const std::lock_guard lock(mutex_);
        const auto found = running_.find(build);
        if (found == running_.end()) {
            return std::nullopt; // started by an earlier master: it ends as retry (no report)
        }
        report = std::move(found->second.report);
        started_requests_.erase(report.request_id);
        running_.erase(found);
    }
    report.event = report::BuildEvent::Finished;
    report.result = result;
    report.at = clock_.now();
    return report;
}

report::BuildReport Reports::cancelled(const store::BuildRequest& request) const {
    auto report = base(request, report::BuildEvent::Cancelled);
    report.result = BuildResult::Cancelled;
    return report;
}

void Reports::operational(const report::OpsEvent& event) {
    for (const auto& reporter : reporters_) {
        reporter->operational(event);
    }
}

void Reports::stop() {
    for (const auto& reporter : reporters_) {
        reporter->stop();
    }
}

} // namespace ci::master
