#pragma once

// The master's reporters (GitHub statuses, Zulip, those an embedding program added): the events of
// a build request's life turned into report::BuildReport values and handed to each reporter. It
// remembers, under its own lock, what a running build's reports need (the request's branch,
// revision and properties) between its start and its end. Reporters queue and send on their own
// threads; nothing here waits for a network or a disk.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/report/reporter.h>
#include <ci/store/store.h>

namespace ci::master {

class Reports {
public:
    /// `base_url`: the master's web address, for the builds' links (buildmaster.url).
    Reports(const config::Config& config,
            const Clock& clock,
            std::vector<std::shared_ptr<report::Reporter>> reporters,
            std::string base_url);

    /// Requests were stored (ingest thread).
    void requested(const std::vector<store::BuildRequest>& requests);
    /// A build of `request` started (dispatcher thread). A request without a revision reports
    /// its start at its checkout, when its branch tip is known.
    void started(const store::BuildRequest& request, std::int64_t build);
    /// The build's checkout recorded its branch tip.
    void checked_out(std::int64_t build, const std::string& branch_tip);
    /// The build ended (its request is queued again when the result is Retry).
    void finished(std::int64_t build, BuildResult result);
    /// A pending request was cancelled through the API (a read-pool thread).
    void cancelled(const store::BuildRequest& request);
    /// An operational event (a reporter gave up, the store degraded; the EC2 pools will report
    /// an instance that failed to terminate here): passed to every reporter. Any thread.
    void operational(const report::OpsEvent& event);
    /// Stops every reporter (at shutdown, after the last event).
    void stop();

    /// The link of a build: BASE/api/v1/builds/ID.
    [[nodiscard]] std::string build_url(std::int64_t build) const;
    [[nodiscard]] bool empty() const noexcept { return reporters_.empty(); }

private:
    void send(const report::BuildReport& report);
    report::BuildReport base(const store::BuildRequest& request, report::BuildEvent event) const;

    const config::Config& config_;
    const Clock& clock_;
    std::vector<std::shared_ptr<report::Reporter>> reporters_;
    std::string base_url_;
    std::mutex mutex_;
    struct Running {
        report::BuildReport report; ///< as started (revision may be empty until the checkout)
        bool start_reported = false;
    };
    std::map<std::int64_t, Running> running_; ///< by build id
    // Requests whose start was reported: a Requested that comes later (the ingest thread calls
    // back after its commit, and a dispatcher may have claimed the request meanwhile) is late
    // and is not reported after the start.
    std::set<std::int64_t> started_requests_;
};

} // namespace ci::master
