#pragma once

// The queue every HTTP reporter sends from (GitHub statuses, Zulip messages): what it sends is
// the reporter's Queued messages in the outbox (store::Store::queued_reports), stored there by
// the master with the events they report (Reporter::outbox), by a task of the reporter, or by
// push(); each is marked once the service accepted or refused it, so that a restart neither
// loses nor repeats it. The queue reads the outbox at its start and whenever it is woken (by
// wake(), push() or a task), taking the messages queued since it last looked (ids only
// increase in commit order). One thread sends the messages one at a time, in order; one that
// fails is retried (the channel's verdict: Retry-After, backoff doubling from first_retry to
// max_retry) before any later one, and dropped with an error in the log (and an OpsEvent) once
// give_up has passed since it was queued.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/report/delivery.h>
#include <ci/store/store.h>

namespace ci::report::detail {

/// One kind of message: how the queue sends it and names it in the log.
class Channel {
public:
    virtual ~Channel() = default;
    /// The request that sends a stored payload; an error drops the payload (it can never be
    /// sent).
    [[nodiscard]] virtual Result<http::Request> request(std::string_view payload) = 0;
    /// Judges the service's answer.
    [[nodiscard]] virtual Verdict judge(const http::Response& response) = 0;
    /// The payload in a few words for the log ("OWNER/REPO abc123 libci/tests: pending");
    /// never a secret.
    [[nodiscard]] virtual std::string describe(std::string_view payload) = 0;
};

struct QueueOptions {
    std::string name;                ///< the outbox's reporter name, and the log lines' prefix
    std::string noun = "message";    ///< what one message is called in the log ("status")
    std::string plural = "messages"; ///< and several ("statuses")
    std::chrono::seconds give_up{6 * 3600};
    std::chrono::milliseconds first_retry{1000};
    std::chrono::milliseconds max_retry{60000};
    OpsHook ops; ///< told when a message is given up (may be empty)
};

/// Runs on the queue's thread with the outbox's store, in order with the messages pushed
/// before and after it; returns payloads to queue. What it stores in the outbox itself (under
/// the queue's name) is read by the queue after it.
using Task = std::function<std::vector<std::string>(store::Store& outbox)>;

class SendQueue {
public:
    /// Reads what an earlier run left queued (sent first) and starts the thread. `clock` must
    /// outlive the queue. Fails with the outbox's error.
    [[nodiscard]] static Result<std::unique_ptr<SendQueue>>
    start(QueueOptions options,
          std::unique_ptr<Channel> channel,
          std::unique_ptr<store::Store> outbox,
          std::unique_ptr<http::Client> client,
          const Clock& clock);
    ~SendQueue();
    SendQueue(const SendQueue&) = delete;
    SendQueue& operator=(const SendQueue&) = delete;

    /// Queues one message (stored by the queue's thread). Thread-safe, never blocks on I/O.
    void push(std::string payload);
    /// Makes the queue read what was stored in its outbox since it last looked. Thread-safe.
    void wake();
    /// Runs `task` on the queue's thread (see Task). Thread-safe.
    void post(Task task);
    /// True once stop() was called: a long task may cut itself short.
    [[nodiscard]] bool stopping();
    /// Stops the thread after what it is doing; what is stored and unsent goes at the next
    /// start. Idempotent.
    void stop();

private:
    SendQueue(QueueOptions options,
              std::unique_ptr<Channel> channel,
              std::unique_ptr<store::Store> outbox,
              std::unique_ptr<http::Client> client,
              const Clock& clock,
              std::deque<store::QueuedReport> stored);
    void run();
    void store_incoming(const std::vector<std::string>& payloads);
    void read_outbox();
    void finish_front(store::ReportState state);
    void send_front();

    QueueOptions options_;
    std::unique_ptr<Channel> channel_;
    std::unique_ptr<store::Store> outbox_;
    std::unique_ptr<http::Client> client_;
    const Clock& clock_;
    // Only the thread touches these.
    std::deque<store::QueuedReport> queue_;
    std::chrono::milliseconds retry_;
    bool failing_ = false;
    std::chrono::steady_clock::time_point next_try_{};
    std::int64_t last_read_ = 0; // the newest outbox id read
    // After a failed read of the outbox: not again before this.
    std::chrono::steady_clock::time_point read_again_{};
    // Shared with push(), post() and stop().
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<Task> incoming_;
    bool read_wanted_ = false; // wake() was called
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace ci::report::detail
