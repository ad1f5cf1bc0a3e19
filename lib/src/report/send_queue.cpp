#include "report/send_queue.h"

#include <charconv>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include <ci/core/log.h>

namespace ci::report {

std::optional<std::int64_t> header_integer(const http::Response& response, std::string_view name) {
    const auto* value = response.header(name);
    if (value == nullptr) {
        return std::nullopt;
    }
    std::int64_t number = 0;
    const auto* end = value->data() + value->size();
    auto [ptr, ec] = std::from_chars(value->data(), end, number);
    if (ec != std::errc() || ptr != end) {
        return std::nullopt;
    }
    return number;
}

Result<http::Request>
post_request(std::string_view base_url, std::string_view path, std::string_view key) {
    std::string_view url = base_url;
    http::Request request;
    request.method = "POST";
    if (url.starts_with("https://")) {
        request.scheme = "https";
        url.remove_prefix(8);
    } else if (url.starts_with("http://")) {
        request.scheme = "http";
        url.remove_prefix(7);
    } else {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: expected an http(s) URL, got \"{}\"", key, base_url));
    }
    const auto slash = url.find('/');
    request.host = std::string(url.substr(0, slash));
    std::string base =
        slash == std::string_view::npos ? std::string() : std::string(url.substr(slash));
    while (base.ends_with('/')) {
        base.pop_back();
    }
    request.path = base + std::string(path);
    return request;
}

} // namespace ci::report

namespace ci::report::detail {

Result<std::unique_ptr<SendQueue>> SendQueue::start(QueueOptions options,
                                                    std::unique_ptr<Channel> channel,
                                                    std::unique_ptr<store::Store> outbox,
                                                    std::unique_ptr<http::Client> client,
                                                    const Clock& clock) {
    auto stored = outbox->queued_reports(options.name);
    if (!stored) {
        return fail(stored.error());
    }
    if (!stored->empty()) {
        log::info("{}: {} {}(s) left by the previous run are sent first",
                  options.name,
                  stored->size(),
                  options.noun);
    }
    auto queue = std::unique_ptr<SendQueue>(
        new SendQueue(std::move(options),
                      std::move(channel),
                      std::move(outbox),
                      std::move(client),
                      clock,
                      std::deque<store::QueuedReport>(stored->begin(), stored->end())));
    return queue;
}

SendQueue::SendQueue(QueueOptions options,
                     std::unique_ptr<Channel> channel,
                     std::unique_ptr<store::Store> outbox,
                     std::unique_ptr<http::Client> client,
                     const Clock& clock,
                     std::deque<store::QueuedReport> stored)
    : options_(std::move(options)), channel_(std::move(channel)), outbox_(std::move(outbox)),
      client_(std::move(client)), clock_(clock), queue_(std::move(stored)),
      retry_(options_.first_retry) {
    if (!queue_.empty()) {
        last_read_ = queue_.back().id;
    }
    thread_ = std::thread([this] { run(); });
}

SendQueue::~SendQueue() {
    stop();
}

void SendQueue::push(std::string payload) {
    post([payload = std::move(payload)](store::Store&) {
        return std::vector<std::string>{payload};
    });
}

void SendQueue::post(Task task) {
    {
        const std::lock_guard lock(mutex_);
        incoming_.push_back(std::move(task));
    }
    wake_.notify_one();
}

void SendQueue::wake() {
    {
        const std::lock_guard lock(mutex_);
        read_wanted_ = true;
    }
    wake_.notify_one();
}

bool SendQueue::stopping() {
    const std::lock_guard lock(mutex_);
    return stopping_;
}

void SendQueue::stop() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void SendQueue::run() {
    bool read_due = false; // a read of the outbox failed: try again at read_again_
    for (;;) {
        std::vector<Task> incoming;
        bool read = false;
        {
            std::unique_lock lock(mutex_);
            const auto ready = [&] {
                const auto now = std::chrono::steady_clock::now();
                return stopping_ || !incoming_.empty() || read_wanted_ ||
                       (read_due && now >= read_again_) || (!queue_.empty() && now >= next_try_);
            };
            // Until the front's next try or the next read, whichever comes first; with
            // neither, until woken.
            std::optional<std::chrono::steady_clock::time_point> until;
            if (!queue_.empty()) {
                until = next_try_;
            }
            if (read_due && (!until || read_again_ < *until)) {
                until = read_again_;
            }
            if (until) {
                wake_.wait_until(lock, *until, ready);
            } else {
                wake_.wait(lock, ready);
            }
            incoming.swap(incoming_);
            read = std::exchange(read_wanted_, false) || !incoming.empty() ||
                   (read_due && std::chrono::steady_clock::now() >= read_again_);
        }
        std::vector<std::string> payloads;
        for (auto& task : incoming) {
            auto more = task(*outbox_);
            payloads.insert(payloads.end(),
                            std::make_move_iterator(more.begin()),
                            std::make_move_iterator(more.end()));
        }
        store_incoming(payloads);
        if (read) {
            read_outbox();
            read_due = read_again_ > std::chrono::steady_clock::now();
        }
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

// Into the outbox first (read_outbox() takes them from there): once stored, a restart sends
// them.
void SendQueue::store_incoming(const std::vector<std::string>& payloads) {
    if (payloads.empty()) {
        return;
    }
    const auto now = clock_.now();
    auto ids = outbox_->queue_reports(options_.name, payloads, now);
    if (ids) {
        return;
    }
    // Sent anyway, from memory; only a restart before they are sent would lose them.
    log::error("{}: {} {}(s) not stored (a restart now would lose them): {}",
               options_.name,
               payloads.size(),
               options_.noun,
               ids.error().message);
    for (const auto& payload : payloads) {
        queue_.push_back(store::QueuedReport{0, options_.name, payload, now});
    }
}

// What was queued in the outbox since the last read, in order. A failed read is tried again a
// second later (nothing is lost meanwhile: it stays in the outbox).
void SendQueue::read_outbox() {
    auto stored = outbox_->queued_reports(options_.name, last_read_);
    if (!stored) {
        log::error("{}: reading the outbox (tried again in 1 s): {}",
                   options_.name,
                   stored.error().message);
        read_again_ = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        return;
    }
    read_again_ = {};
    for (auto& message : *stored) {
        last_read_ = message.id;
        queue_.push_back(std::move(message));
    }
}

void SendQueue::finish_front(store::ReportState state) {
    const auto& front = queue_.front();
    if (front.id != 0) {
        if (auto status = outbox_->finish_report(front.id, state, clock_.now()); !status) {
            // Not marked: a restart may send it again.
            log::error("{}: {}", options_.name, status.error().message);
        }
    }
    queue_.pop_front();
    retry_ = options_.first_retry;
    failing_ = false;
}

void SendQueue::send_front() {
    const auto& front = queue_.front();
    const auto what = channel_->describe(front.payload);
    if (clock_.now() - front.queued > options_.give_up) {
        const auto line = fmt::format("{}: gave up on the {} {} after {} s unsent ({}.give_up)",
                                      options_.name,
                                      options_.noun,
                                      what,
                                      options_.give_up.count(),
                                      options_.name);
        log::error("{}", line);
        finish_front(store::ReportState::Dropped);
        if (options_.ops) {
            options_.ops(OpsEvent{OpsEvent::Kind::ReporterGaveUp, options_.name, line});
        }
        return;
    }
    Verdict verdict;
    if (auto request = channel_->request(front.payload); !request) {
        verdict = Verdict{Verdict::Kind::Drop, std::chrono::seconds(0), request.error().message};
    } else if (auto response = client_->send(*request); !response) {
        verdict = Verdict{Verdict::Kind::Retry, std::chrono::seconds(0), response.error().message};
    } else {
        verdict = channel_->judge(*response);
    }
    switch (verdict.kind) {
    case Verdict::Kind::Sent:
        log::debug("{}: sent {}", options_.name, what);
        if (failing_) {
            log::info("{}: {} are accepted again ({} queued)",
                      options_.name,
                      options_.plural,
                      queue_.size() - 1);
        }
        finish_front(store::ReportState::Sent);
        return;
    case Verdict::Kind::Drop:
        log::error("{}: the service refused the {} {}, dropped: {}",
                   options_.name,
                   options_.noun,
                   what,
                   verdict.why);
        finish_front(store::ReportState::Dropped);
        return;
    case Verdict::Kind::Retry:
        break;
    }
    std::chrono::milliseconds wait = verdict.wait;
    if (wait.count() == 0) {
        wait = retry_;
        retry_ = std::min(retry_ * 2, options_.max_retry);
    }
    if (!failing_) {
        // Once per streak: an outage is one warning, not one per attempt.
        log::warn("{}: the {} {} waits ({} queued): {}; retrying in {} ms",
                  options_.name,
                  options_.noun,
                  what,
                  queue_.size(),
                  verdict.why,
                  wait.count());
        failing_ = true;
    }
    next_try_ = std::chrono::steady_clock::now() + wait;
}

} // namespace ci::report::detail
