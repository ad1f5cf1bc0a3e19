// The GitHub reporter's queue: statuses stored in the outbox, then sent one at a time, in order,
// from a thread of its own.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/report/github.h>

namespace ci::report::github {

namespace {

constexpr const char* outbox_name = "github";

// "OWNER/REPO abcdef1 libci/tests: pending" for the log (never the token).
std::string describe(const CommitStatus& status) {
    return fmt::format("{} {} {}: {}",
                       status.repository,
                       status.sha.substr(0, 12),
                       status.context,
                       to_string(status.state));
}

class GithubReporter final : public Reporter {
public:
    GithubReporter(Settings settings,
                   std::unique_ptr<store::Store> outbox,
                   std::unique_ptr<http::Client> client,
                   const Clock& clock,
                   std::deque<store::QueuedReport> stored)
        : settings_(std::move(settings)), outbox_(std::move(outbox)), client_(std::move(client)),
          clock_(clock), queue_(std::move(stored)), retry_(settings_.first_retry) {
        thread_ = std::thread([this] { run(); });
    }
    ~GithubReporter() override { stop(); }
    GithubReporter(const GithubReporter&) = delete;
    GithubReporter& operator=(const GithubReporter&) = delete;

    std::string name() const override { return "github"; }

    void report(const BuildReport& report) override {
        auto status = status_for(report, settings_);
        if (!status) {
            return;
        }
        {
            const std::lock_guard lock(mutex_);
            incoming_.push_back(to_json(*status));
        }
        wake_.notify_one();
    }

    void stop() override {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

private:
    void run() {
        for (;;) {
            std::vector<std::string> incoming;
            {
                std::unique_lock lock(mutex_);
                wake_.wait_until(lock, next_try_, [&] {
                    return stopping_ || !incoming_.empty() ||
                           (!queue_.empty() && std::chrono::steady_clock::now() >= next_try_);
                });
                incoming.swap(incoming_);
            }
            store_incoming(incoming);
            {
                const std::lock_guard lock(mutex_);
                if (stopping_) {
                    return; // stored: the next start sends them
                }
            }
            if (!queue_.empty() && std::chrono::steady_clock::now() >= next_try_) {
                send_front();
            }
        }
    }

    // Into the outbox first: once stored, a restart sends them.
    void store_incoming(const std::vector<std::string>& payloads) {
        if (payloads.empty()) {
            return;
        }
        const auto now = clock_.now();
        auto ids = outbox_->queue_reports(outbox_name, payloads, now);
        if (!ids) {
            // Sent anyway, from memory; only a restart before they are sent would lose them.
            log::error("github: {} status(es) not stored (a restart now would lose them): {}",
                       payloads.size(),
                       ids.error().message);
        }
        for (std::size_t i = 0; i < payloads.size(); ++i) {
            queue_.push_back(
                store::QueuedReport{ids ? (*ids)[i] : 0, outbox_name, payloads[i], now});
        }
    }

    void finish_front(store::ReportState state) {
        const auto& front = queue_.front();
        if (front.id != 0) {
            if (auto status = outbox_->finish_report(front.id, state, clock_.now()); !status) {
                // Not marked: a restart may send it again (a repeated status changes nothing
                // on GitHub's side but its list).
                log::error("github: {}", status.error().message);
            }
        }
        queue_.pop_front();
        retry_ = settings_.first_retry;
        failing_ = false;
    }

    void send_front() {
        const auto& front = queue_.front();
        auto status = parse_status(front.payload);
        if (!status) {
            log::error("github: dropped: {}", status.error().message);
            finish_front(store::ReportState::Dropped);
            return;
        }
        if (clock_.now() - front.queued > settings_.give_up) {
            log::error("github: gave up on the status {} after {} s unsent (github.give_up)",
                       describe(*status),
                       settings_.give_up.count());
            finish_front(store::ReportState::Dropped);
            return;
        }
        auto request = status_request(*status, settings_);
        if (!request) {
            log::error(
                "github: dropped the status {}: {}", describe(*status), request.error().message);
            finish_front(store::ReportState::Dropped);
            return;
        }
        auto response = client_->send(*request);
        Verdict verdict;
        if (!response) {
            verdict =
                Verdict{Verdict::Kind::Retry, std::chrono::seconds(0), response.error().message};
        } else {
            verdict = judge(*response, clock_.now());
        }
        switch (verdict.kind) {
        case Verdict::Kind::Sent:
            log::debug("github: sent {}", describe(*status));
            if (failing_) {
                log::info("github: statuses are accepted again ({} queued)", queue_.size() - 1);
            }
            finish_front(store::ReportState::Sent);
            return;
        case Verdict::Kind::Drop:
            log::error("github: GitHub refused the status {}, dropped: {}",
                       describe(*status),
                       verdict.why);
            finish_front(store::ReportState::Dropped);
            return;
        case Verdict::Kind::Retry:
            break;
        }
        std::chrono::milliseconds wait = verdict.wait;
        if (wait.count() == 0) {
            wait = retry_;
            retry_ = std::min(retry_ * 2, settings_.max_retry);
        }
        if (!failing_) {
            // Once per streak: a GitHub outage is one warning, not one per attempt.
            log::warn("github: the status {} waits ({} queued): {}; retrying in {} ms",
                      describe(*status),
                      queue_.size(),
                      verdict.why,
                      wait.count());
            failing_ = true;
        }
        next_try_ = std::chrono::steady_clock::now() + wait;
    }

    Settings settings_;
    std::unique_ptr<store::Store> outbox_;
    std::unique_ptr<http::Client> client_;
    const Clock& clock_;
    // Only the thread touches these.
    std::deque<store::QueuedReport> queue_;
    std::chrono::milliseconds retry_;
    bool failing_ = false;
    std::chrono::steady_clock::time_point next_try_{};
    // Shared with report() and stop().
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<std::string> incoming_;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace

Result<std::shared_ptr<Reporter>> start_reporter(Settings settings,
                                                 std::unique_ptr<store::Store> outbox,
                                                 std::unique_ptr<http::Client> client,
                                                 const Clock& clock) {
    auto stored = outbox->queued_reports(outbox_name);
    if (!stored) {
        return fail(stored.error());
    }
    if (!stored->empty()) {
        log::info("github: {} status(es) left by the previous run are sent first", stored->size());
    }
    return std::shared_ptr<Reporter>(std::make_shared<GithubReporter>(
        std::move(settings),
        std::move(outbox),
        std::move(client),
        clock,
        std::deque<store::QueuedReport>(stored->begin(), stored->end())));
}

} // namespace ci::report::github
