#include "worker/reported_build.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "worker/log_batch.h"

namespace ci::worker {

namespace protocol = master::protocol;

namespace {

// A build's messages through `send`, its log in batches (detail::LogBatch): full chunks as they
// fill, older output by a thread of its own at its deadline, and whatever is pending before any
// other message, so that the order of the messages is the order of the events.
class BatchedSender {
public:
    BatchedSender(std::int64_t build, const std::function<void(protocol::Message)>& send)
        : batch_(build), send_(send), flusher_([this](const std::stop_token& stop) { run(stop); }) {
    }
    ~BatchedSender() {
        flusher_.request_stop();
        flusher_.join();
        const std::lock_guard lock(mutex_);
        send_pending_locked();
    }
    BatchedSender(const BatchedSender&) = delete;
    BatchedSender& operator=(const BatchedSender&) = delete;

    void output(int step, std::string_view text) {
        const std::lock_guard lock(mutex_);
        const bool was_idle = !batch_.deadline();
        for (auto& chunk : batch_.add(step, text, std::chrono::steady_clock::now())) {
            send_(std::move(chunk));
        }
        if (was_idle && batch_.deadline()) {
            wake_.notify_one();
        }
    }

    void send(protocol::Message message) {
        const std::lock_guard lock(mutex_);
        send_pending_locked();
        send_(std::move(message));
    }

private:
    void send_pending_locked() {
        if (auto chunk = batch_.take()) {
            send_(std::move(*chunk));
        }
    }

    void run(const std::stop_token& stop) {
        std::unique_lock lock(mutex_);
        while (!stop.stop_requested()) {
            if (const auto deadline = batch_.deadline()) {
                wake_.wait_until(lock, stop, *deadline, [] { return false; });
            } else {
                wake_.wait(lock, stop, [&] { return batch_.deadline().has_value(); });
            }
            if (auto chunk = batch_.due(std::chrono::steady_clock::now())) {
                send_(std::move(*chunk));
            }
        }
    }

    detail::LogBatch batch_;
    const std::function<void(protocol::Message)>& send_;
    std::mutex mutex_;
    std::condition_variable_any wake_;
    std::jthread flusher_; // last: it uses the members above
};

} // namespace

void TriggerAnswers::deliver(const protocol::Triggered& answer) {
    {
        const std::lock_guard lock(mutex_);
        answers_.insert_or_assign({answer.build, answer.step}, answer);
    }
    arrived_.notify_all();
}

std::optional<protocol::Triggered>
TriggerAnswers::wait(std::int64_t build,
                     int step,
                     std::chrono::steady_clock::time_point deadline,
                     const std::stop_token& stop) {
    // No deadline is time_point::max(): a year is as good, and safe from overflow in the wait.
    deadline = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::hours(24 * 365));
    std::unique_lock lock(mutex_);
    const auto key = std::pair(build, step);
    arrived_.wait_until(lock, stop, deadline, [&] { return answers_.contains(key); });
    const auto found = answers_.find(key);
    if (found == answers_.end()) {
        return std::nullopt;
    }
    auto answer = std::move(found->second);
    answers_.erase(found);
    return answer;
}

void TriggerAnswers::forget(std::int64_t build) {
    const std::lock_guard lock(mutex_);
    std::erase_if(answers_, [&](const auto& entry) { return entry.first.first == build; });
}

build::BuildOutcome run_reported_build(const build::BuildSpec& spec,
                                       const build::RunnerOptions& options,
                                       const std::function<void(protocol::Message)>& send,
                                       std::stop_token stop,
                                       TriggerAnswers* answers) {
    const auto id = spec.build_id;
    BatchedSender sender(id, send);
    build::BuildObserver observer;
    observer.step_started = [&](int step, const std::string& name) {
        sender.send(protocol::StepStarted{id, step, name});
    };
    observer.output = [&](int step, std::string_view text) { sender.output(step, text); };
    std::map<std::pair<int, std::string>, std::int64_t> logfile_sequences;
    observer.logfile_output = [&](int step, const std::string& name, std::string_view text) {
        sender.send(protocol::LogFileChunk{
            id, step, name, logfile_sequences[{step, name}]++, std::string(text)});
    };
    observer.checked_out = [&](const build::CheckoutRecord& record) {
        sender.send(
            protocol::CheckedOut{id, record.branch_tip, record.target_tip, record.merge_commit});
    };
    observer.step_finished = [&](int step, const build::StepOutcome& outcome) {
        sender.send(protocol::step_finished(id, step, outcome));
    };
    if (answers != nullptr) {
        observer.trigger = [&](int step,
                               const build::StepSpec&,
                               std::chrono::steady_clock::time_point deadline,
                               const std::stop_token& stopped) -> build::StepOutcome {
            sender.send(protocol::Trigger{id, step});
            auto answer = answers->wait(id, step, deadline, stopped);
            build::StepOutcome outcome;
            if (answer) {
                outcome.result = answer->result;
                outcome.description = answer->description;
            } else if (stopped.stop_requested()) {
                outcome.result = BuildResult::Cancelled;
                outcome.description = "stopped while waiting for the master";
            } else {
                outcome.result = BuildResult::Failure;
                outcome.description =
                    "timed out waiting for the master's answer (the triggered builds)";
            }
            return outcome;
        };
    }
    auto outcome = build::run_build(spec, options, observer, std::move(stop));
    if (answers != nullptr) {
        answers->forget(id);
    }
    sender.send(protocol::BuildFinished{id, outcome.result, outcome.message});
    return outcome;
}

} // namespace ci::worker
