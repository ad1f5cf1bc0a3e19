// The Zulip reporter: pushes gathered from reports on the queue's thread (kept in the outbox
// until they end), their summaries sent from the shared queue (send_queue.h).

#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/report/zulip.h>

#include "report/send_queue.h"

namespace ci::report::zulip {

namespace {

constexpr const char* outbox_name = "zulip";
constexpr const char* pushes_name = "zulip-pushes";

// How the queue sends a stored message.
class MessageChannel final : public detail::Channel {
public:
    explicit MessageChannel(Settings settings) : settings_(std::move(settings)) {}

    Result<http::Request> request(std::string_view payload) override {
        auto message = parse_message(payload);
        if (!message) {
            return fail(message.error());
        }
        return message_request(*message, settings_);
    }

    Verdict judge(const http::Response& response) override { return zulip::judge(response); }

    // "stream > topic" (never the key).
    std::string describe(std::string_view payload) override {
        auto message = parse_message(payload);
        return message ? fmt::format("{} > {}", message->stream, message->topic)
                       : std::string("(damaged)");
    }

private:
    Settings settings_;
};

// A push not ended yet, and its row in the outbox (0: not stored).
struct OpenPush {
    std::int64_t row = 0;
    Push push;
};

// What a finished build's line shows, read from the store.
struct Details {
    std::chrono::seconds duration{0};
    std::string failed_step;
    std::string log_tail;
    std::vector<std::string> failed_tests;
};

class ZulipReporter final : public Reporter {
public:
    ZulipReporter(Settings settings, const Clock& clock, std::map<std::int64_t, OpenPush> pushes)
        : settings_(std::move(settings)), clock_(clock), pushes_(std::move(pushes)) {}

    void attach(std::unique_ptr<detail::SendQueue> queue) { queue_ = std::move(queue); }

    std::string name() const override { return "zulip"; }

    void report(const BuildReport& report) override {
        queue_->post([this, report](store::Store& outbox) { return handle(report, outbox); });
    }

    void operational(const OpsEvent& event) override {
        // Zulip giving up on its own messages is not sent to Zulip (it would only wait too).
        if (event.source == outbox_name) {
            return;
        }
        if (auto message = ops_message(event, settings_)) {
            queue_->push(to_json(*message));
        }
    }

    void stop() override { queue_->stop(); }

private:
    // The queue's thread only, from here on.
    std::vector<std::string> handle(const BuildReport& report, store::Store& outbox) {
        switch (report.event) {
        case BuildEvent::Requested:
            if (auto* push = add(report)) {
                save(push->push.id, outbox);
            }
            return {};
        case BuildEvent::Started:
            started(report, outbox);
            return {};
        case BuildEvent::Finished:
        case BuildEvent::Cancelled: // a line of its push ends, with no build
            return finished(report, outbox);
        }
        return {};
    }

    // The open push `report`'s request belongs to, adding it when it is new; nullptr when it
    // was there already.
    OpenPush* add(const BuildReport& report) {
        if (find_line(report.request_id) != nullptr) {
            return nullptr;
        }
        OpenPush* push = nullptr;
        for (auto& [id, open] : pushes_) {
            if (open.push.repository == report.repository && open.push.branch == report.branch &&
                open.push.revision == report.revision) {
                push = &open;
                break;
            }
        }
        if (push == nullptr) {
            push = &pushes_[report.request_id];
            push->push =
                Push{report.request_id, report.repository, report.branch, report.revision, {}};
        }
        BuildLine line;
        line.request_id = report.request_id;
        line.builder = report.builder;
        push->push.builds.push_back(std::move(line));
        return push;
    }

    BuildLine* find_line(std::int64_t request, std::int64_t* push_id = nullptr) {
        for (auto& [id, open] : pushes_) {
            for (auto& line : open.push.builds) {
                if (line.request_id == request) {
                    if (push_id != nullptr) {
                        *push_id = id;
                    }
                    return &line;
                }
            }
        }
        return nullptr;
    }

    void started(const BuildReport& report, store::Store& outbox) {
        std::set<std::int64_t> changed;
        if (auto* added = add(report)) { // its Requested came late, or never
            changed.insert(added->push.id);
        }
        std::int64_t push_id = 0;
        auto* line = find_line(report.request_id, &push_id);
        line->build_id = report.build_id;
        line->url = report.url;
        auto& push = pushes_[push_id].push;
        if (push.revision.empty()) {
            push.revision = report.revision; // forced without one: known at the checkout
        }
        changed.insert(push_id);
        // An older request of this builder and branch that never started was collapsed into
        // this one (claims take the oldest first): it ends with this build.
        for (auto& [id, open] : pushes_) {
            if (id == push_id || open.push.repository != report.repository ||
                open.push.branch != report.branch) {
                continue;
            }
            for (auto& other : open.push.builds) {
                if (other.builder == report.builder && other.build_id == 0 && !other.result &&
                    other.built_by == 0 && other.request_id < report.request_id) {
                    other.built_by = report.request_id;
                    changed.insert(id);
                }
            }
        }
        for (const auto id : changed) {
            save(id, outbox);
        }
    }

    std::vector<std::string> finished(const BuildReport& report, store::Store& outbox) {
        const auto result = report.result.value_or(BuildResult::Retry);
        if (result == BuildResult::Retry) {
            return {}; // its request runs again
        }
        std::set<std::int64_t> touched;
        for (auto& [id, open] : pushes_) {
            for (const auto& line : open.push.builds) {
                if (!line.result &&
                    (line.request_id == report.request_id || line.built_by == report.request_id)) {
                    touched.insert(id);
                }
            }
        }
        if (touched.empty()) {
            return {}; // not a request this reporter saw (started before a restart, ...)
        }
        const auto details = read_details(report, result, outbox);
        std::vector<std::string> messages;
        for (const auto id : touched) {
            auto& push = pushes_[id].push;
            for (auto& line : push.builds) {
                if (!line.result &&
                    (line.request_id == report.request_id || line.built_by == report.request_id)) {
                    line.result = result;
                    line.build_id = report.build_id;
                    line.url = report.url;
                    line.duration = details.duration;
                    line.failed_step = details.failed_step;
                    line.log_tail = details.log_tail;
                    line.failed_tests = details.failed_tests;
                }
            }
            if (!push.ended()) {
                save(id, outbox);
                continue;
            }
            for (const auto& message : messages_for(push, settings_)) {
                messages.push_back(to_json(message));
            }
            // Ended: its row goes before its messages are stored (by the queue, next).
            forget(id, outbox);
        }
        return messages;
    }

    // The build as the store has it once its end is written (its log whole by then).
    Details read_details(const BuildReport& report, BuildResult result, store::Store& outbox) {
        Details details;
        if (report.build_id == 0) {
            return details; // cancelled before a build of it started
        }
        const auto deadline = std::chrono::steady_clock::now() + settings_.log_wait;
        std::optional<store::Build> build;
        for (;;) {
            auto read = outbox.build(report.build_id);
            if (read && *read && (*read)->finished) {
                build = **read;
                break;
            }
            if (std::chrono::steady_clock::now() >= deadline || queue_->stopping()) {
                log::warn("zulip: the end of build {} is not in the store after {} ms; its "
                          "summary goes without its log",
                          report.build_id,
                          settings_.log_wait.count());
                if (read && *read) {
                    build = **read;
                }
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        if (build) {
            const auto end = build->finished.value_or(report.at);
            details.duration =
                std::chrono::duration_cast<std::chrono::seconds>(end - build->started);
        }
        if (result != BuildResult::Failure && result != BuildResult::Exception) {
            return details;
        }
        auto steps = outbox.steps(report.build_id);
        if (!steps) {
            log::error("zulip: the steps of build {}: {}", report.build_id, steps.error().message);
            return details;
        }
        for (const auto& step : *steps) {
            if (step.result == BuildResult::Failure || step.result == BuildResult::Exception) {
                details.failed_step = step.name;
                auto text = outbox.log(report.build_id, step.number);
                if (!text) {
                    log::error("zulip: the log of build {} step {}: {}",
                               report.build_id,
                               step.number,
                               text.error().message);
                    break;
                }
                details.log_tail = last_lines(*text, settings_.tail_lines);
                // The step's JUnit results (test_results) name its failed tests best; the log's
                // pytest and trial lines serve when it has none.
                if (step.tests && !step.tests->failed_tests.empty()) {
                    details.failed_tests = step.tests->failed_tests;
                    if (details.failed_tests.size() > settings_.max_tests) {
                        details.failed_tests.resize(settings_.max_tests);
                    }
                } else {
                    details.failed_tests = failed_tests(*text, settings_.max_tests);
                }
                break;
            }
        }
        return details;
    }

    // Stores the push's new state, then retires its old row.
    void save(std::int64_t id, store::Store& outbox) {
        auto& open = pushes_[id];
        auto rows = outbox.queue_reports(pushes_name, {to_json(open.push)}, clock_.now());
        if (!rows) {
            log::error("zulip: the builds of push {} not stored (a restart now would lose its "
                       "summary): {}",
                       id,
                       rows.error().message);
            return;
        }
        retire(open.row, outbox);
        open.row = rows->front();
    }

    void forget(std::int64_t id, store::Store& outbox) {
        retire(pushes_[id].row, outbox);
        pushes_.erase(id);
    }

    void retire(std::int64_t row, store::Store& outbox) {
        if (row == 0) {
            return;
        }
        if (auto status = outbox.finish_report(row, store::ReportState::Sent, clock_.now());
            !status) {
            log::error("zulip: {}", status.error().message);
        }
    }

    Settings settings_;
    const Clock& clock_;
    std::map<std::int64_t, OpenPush> pushes_;  // by push id; the queue's thread only
    std::unique_ptr<detail::SendQueue> queue_; // last: stopped (joined) first
};

// The pushes an earlier run left open: the newest row of each (older ones are retired).
Result<std::map<std::int64_t, OpenPush>> load_pushes(store::Store& outbox, const Clock& clock) {
    auto rows = outbox.queued_reports(pushes_name);
    if (!rows) {
        return fail(rows.error());
    }
    std::map<std::int64_t, OpenPush> pushes;
    std::vector<std::int64_t> retired;
    for (const auto& row : *rows) {
        auto push = parse_push(row.payload);
        if (!push) {
            log::error("zulip: dropped: {}", push.error().message);
            retired.push_back(row.id);
            continue;
        }
        auto& open = pushes[push->id];
        if (open.row != 0) {
            retired.push_back(open.row); // rows come oldest first
        }
        open = OpenPush{row.id, std::move(*push)};
    }
    for (const auto id : retired) {
        if (auto status = outbox.finish_report(id, store::ReportState::Dropped, clock.now());
            !status) {
            return fail(status.error());
        }
    }
    if (!pushes.empty()) {
        log::info("zulip: {} push(es) of the previous run wait for their builds", pushes.size());
    }
    return pushes;
}

} // namespace

Result<std::shared_ptr<Reporter>> start_reporter(Settings settings,
                                                 std::unique_ptr<store::Store> outbox,
                                                 std::unique_ptr<http::Client> client,
                                                 const Clock& clock,
                                                 OpsHook ops) {
    auto pushes = load_pushes(*outbox, clock);
    if (!pushes) {
        return fail(pushes.error());
    }
    auto channel = std::make_unique<MessageChannel>(settings);
    detail::QueueOptions options{outbox_name,
                                 "message",
                                 "messages",
                                 settings.give_up,
                                 settings.first_retry,
                                 settings.max_retry,
                                 std::move(ops)};
    auto queue = detail::SendQueue::start(
        std::move(options), std::move(channel), std::move(outbox), std::move(client), clock);
    if (!queue) {
        return fail(queue.error());
    }
    auto reporter = std::make_shared<ZulipReporter>(std::move(settings), clock, std::move(*pushes));
    reporter->attach(std::move(*queue));
    return std::shared_ptr<Reporter>(std::move(reporter));
}

} // namespace ci::report::zulip
