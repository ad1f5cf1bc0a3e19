#pragma once

// The master's reporters (GitHub statuses, Zulip, those an embedding program added): the events of
// a build request's life turned into report::BuildReport values and handed to each reporter. It
// remembers, under its own lock, what a running build's reports need (the request's branch,
// revision and properties) between its start and its end. Reporters queue and send on their own
// threads; nothing here waits for a network or a disk.
//
// Each event is reported in two moves: what the reporters keep in the store's outbox for it
// (outbox(), Reporter::outbox) is written by the transaction that records the event (the
// ingestor's commit of a request, the dispatcher's start_build, the StoreWrites of a checkout
// or an end, a cancel), and once that committed, deliver() calls every reporter's report().

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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

    /// What the reporters keep in the outbox for `report` (to store with its event).
    [[nodiscard]] std::vector<store::OutboxMessage> outbox(const report::BuildReport& report);
    /// Gives `report` to every reporter (once its event and outbox() are stored).
    void deliver(const report::BuildReport& report);

    /// The outbox messages of a request the ingestor queues (IngestOptions::reports).
    [[nodiscard]] std::vector<store::OutboxMessage>
    request_outbox(const store::BuildRequest& request);
    /// Requests were stored (ingest thread).
    void requested(const std::vector<store::BuildRequest>& requests);
    /// The outbox messages of a start of `request` as build `build` (for start_build); none for
    /// a request without a revision, whose start is reported at its checkout.
    [[nodiscard]] std::vector<store::OutboxMessage> start_outbox(const store::BuildRequest& request,
                                                                 std::int64_t build);
    /// A build of `request` started and is stored (dispatcher thread). A request without a
    /// revision reports its start at its checkout, when its branch tip is known.
    void started(const store::BuildRequest& request, std::int64_t build);
    /// The build's checkout recorded its branch tip: the start to report now (to store with the
    /// checkout, then deliver()), when it was held back for want of a revision.
    [[nodiscard]] std::optional<report::BuildReport> checked_out(std::int64_t build,
                                                                 const std::string& branch_tip);
    /// A step of running build `build` read test results: added to its Finished report's.
    void step_tests(std::int64_t build, const build::TestResults& tests);
    /// The build ended (its request is queued again when the result is Retry): its report, to
    /// store with the end and then deliver(); nullopt for a build this master did not start.
    [[nodiscard]] std::optional<report::BuildReport> finished(std::int64_t build,
                                                              BuildResult result);
    /// The report of cancelling a pending request (to store with the cancel, then deliver()).
    [[nodiscard]] report::BuildReport cancelled(const store::BuildRequest& request) const;
    /// An operational event (a reporter gave up, the store degraded; the EC2 pools will report
    /// an instance that failed to terminate here): passed to every reporter. Any thread.
    void operational(const report::OpsEvent& event);
    /// Stops every reporter (at shutdown, after the last event).
    void stop();

    /// The link of a build: BASE/api/v1/builds/ID.
    [[nodiscard]] std::string build_url(std::int64_t build) const;
    [[nodiscard]] bool empty() const noexcept { return reporters_.empty(); }

private:
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
