// The Zulip reporter: the reports the master stored with their events (outbox queue
// "zulip-events") gathered into pushes on the queue's thread (kept in the outbox until they end),
// their summaries sent from the shared queue (send_queue.h).

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
constexpr const char* events_name = "zulip-events";

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

    // Also takes the events an earlier run stored and did not handle.
    void attach(std::unique_ptr<detail::SendQueue> queue) {
        queue_ = std::move(queue);
        take_events();
    }

    std::string name() const override { return "zulip"; }

    // The report itself, stored by the master with its event (a `retry` end changes nothing).
    std::vector<store::OutboxMessage> outbox(const BuildReport& report) override {
        if (report.event == BuildEvent::Finished &&
            report.result.value_or(BuildResult::Retry) == BuildResult::Retry) {
            return {};
        }
        return {store::OutboxMessage{events_name, to_json(report), report.at}};
    }

    // Its event is stored: handle what is stored.
    void report(const BuildReport& /*report*/) override { take_events(); }

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
    // What handling one event changes in the outbox: written in one transaction with the
    // event's mark.
    struct Changes {
        std::vector<store::OutboxMessage> messages; // new push rows and messages to send
        std::vector<std::pair<std::int64_t, std::size_t>> rows; // push id -> its new row's index
        std::vector<std::pair<std::int64_t, store::ReportState>> finished;
    };

    void take_events() {
        queue_->post([this](store::Store& outbox) {
            handle_stored(outbox);
            return std::vector<std::string>{}; // the messages are in the outbox already
        });
    }

    // The queue's thread only, from here on.
    void handle_stored(store::Store& outbox) {
        auto events = outbox.queued_reports(events_name);
        if (!events) {
            log::error("zulip: reading the build events (handled with the next one): {}",
                       events.error().message);
            return;
        }
        for (const auto& event : *events) {
            if (queue_->stopping()) {
                return; // the next start handles the rest
            }
            auto report = parse_report(event.payload);
            Changes changes;
            const auto before = pushes_; // put back when the changes cannot be written
            if (report) {
                handle(*report, outbox, changes);
            } else {
                log::error("zulip: dropped: {}", report.error().message);
            }
            changes.finished.emplace_back(
                event.id, report ? store::ReportState::Sent : store::ReportState::Dropped);
            auto ids = outbox.change_reports(changes.messages, changes.finished, clock_.now());
            if (!ids) {
                log::error("zulip: build event {} not handled (tried again with the next one, "
                           "or at the next start): {}",
                           event.id,
                           ids.error().message);
                pushes_ = before;
                return;
            }
            for (const auto& [push, index] : changes.rows) {
                if (auto found = pushes_.find(push); found != pushes_.end()) {
                    found->second.row = (*ids)[index];
                }
            }
        }
    }

    void handle(const BuildReport& report, store::Store& outbox, Changes& changes) {
        switch (report.event) {
        case BuildEvent::Requested:
            if (auto* push = add(report)) {
                save(push->push.id, changes);
            }
            return;
        case BuildEvent::Started:
            started(report, changes);
            return;
        case BuildEvent::Finished:
        case BuildEvent::Cancelled: // a line of its push ends, with no build
            finished(report, outbox, changes);
            return;
        }
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

    void started(const BuildReport& report, Changes& changes) {
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
            save(id, changes);
        }
    }

    void finished(const BuildReport& report, store::Store& outbox, Changes& changes) {
        const auto result = report.result.value_or(BuildResult::Retry);
        if (result == BuildResult::Retry) {
            return; // its request runs again
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
            return; // not a request this reporter saw (requested before it was configured)
        }
        const auto details = read_details(report, result, outbox);
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
                    line.tests = report.tests;
                    if (line.tests) {
                        line.tests->failed_tests.clear(); // the line's own are in failed_tests
                    }
                }
            }
            if (!push.ended()) {
                save(id, changes);
                continue;
            }
            for (const auto& message : messages_for(push, settings_)) {
                changes.messages.push_back(
                    store::OutboxMessage{outbox_name, to_json(message), clock_.now()});
            }
            forget(id, changes); // ended: its row goes with its messages' coming
        }
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

    // The push's new state as a new row, and its old row retired.
    void save(std::int64_t id, Changes& changes) {
        const auto& open = pushes_[id];
        changes.rows.emplace_back(id, changes.messages.size());
        changes.messages.push_back(
            store::OutboxMessage{pushes_name, to_json(open.push), clock_.now()});
        retire(open.row, changes);
    }

    void forget(std::int64_t id, Changes& changes) {
        retire(pushes_[id].row, changes);
        pushes_.erase(id);
    }

    static void retire(std::int64_t row, Changes& changes) {
        if (row != 0) {
            changes.finished.emplace_back(row, store::ReportState::Sent);
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
