// The GitHub reporter: statuses chosen by status_for, stored by the master with the events they
// report (outbox()), sent from the shared queue (send_queue.h).

#include <fmt/format.h>

#include <ci/report/github.h>

#include "report/send_queue.h"

namespace ci::report::github {

namespace {

// How the queue sends a stored status.
class StatusChannel final : public detail::Channel {
public:
    StatusChannel(Settings settings, const Clock& clock)
        : settings_(std::move(settings)), clock_(clock) {}

    Result<http::Request> request(std::string_view payload) override {
        auto status = parse_status(payload);
        if (!status) {
            return fail(status.error());
        }
        return status_request(*status, settings_);
    }

    Verdict judge(const http::Response& response) override {
        return github::judge(response, clock_.now());
    }

    // "OWNER/REPO abcdef1 libci/tests: pending" (never the token).
    std::string describe(std::string_view payload) override {
        auto status = parse_status(payload);
        if (!status) {
            return "(damaged)";
        }
        return fmt::format("{} {} {}: {}",
                           status->repository,
                           status->sha.substr(0, 12),
                           status->context,
                           to_string(status->state));
    }

private:
    Settings settings_;
    const Clock& clock_;
};

class GithubReporter final : public Reporter {
public:
    GithubReporter(Settings settings, std::unique_ptr<detail::SendQueue> queue)
        : settings_(std::move(settings)), queue_(std::move(queue)) {}

    std::string name() const override { return "github"; }

    // Stored by the master with the event: none lost, none repeated across a kill -9.
    std::vector<store::OutboxMessage> outbox(const BuildReport& report) override {
        if (auto status = status_for(report, settings_)) {
            return {store::OutboxMessage{"github", to_json(*status), report.at}};
        }
        return {};
    }

    // The statuses outbox() gave for it are stored: send them.
    void report(const BuildReport& /*report*/) override { queue_->wake(); }

    void stop() override { queue_->stop(); }

private:
    Settings settings_;
    std::unique_ptr<detail::SendQueue> queue_;
};

} // namespace

Result<std::shared_ptr<Reporter>> start_reporter(Settings settings,
                                                 std::unique_ptr<store::Store> outbox,
                                                 std::unique_ptr<http::Client> client,
                                                 const Clock& clock,
                                                 OpsHook ops) {
    detail::QueueOptions options{"github",
                                 "status",
                                 "statuses",
                                 settings.give_up,
                                 settings.first_retry,
                                 settings.max_retry,
                                 std::move(ops)};
    auto queue = detail::SendQueue::start(std::move(options),
                                          std::make_unique<StatusChannel>(settings, clock),
                                          std::move(outbox),
                                          std::move(client),
                                          clock);
    if (!queue) {
        return fail(queue.error());
    }
    return std::shared_ptr<Reporter>(
        std::make_shared<GithubReporter>(std::move(settings), std::move(*queue)));
}

} // namespace ci::report::github
