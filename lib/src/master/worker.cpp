#include "ci/master/worker.h"

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <netdb.h>
#include <poll.h>
#include <random>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ci/core/log.h>

#include "master/log_batch.h"
#include "master/protocol.h"
#include "master/reported_build.h"

namespace ci::master {

namespace {

// A connected socket; writes from several threads are serialized.
class Connection {
public:
    explicit Connection(int fd) : fd_(fd) {}
    ~Connection() { ::close(fd_); }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    [[nodiscard]] int fd() const { return fd_; }

    bool send(const protocol::Message& message) {
        const auto line = protocol::encode(message);
        const std::lock_guard lock(write_mutex_);
        std::size_t sent = 0;
        while (sent < line.size() && !broken_) {
            const auto n = ::send(fd_, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                broken_ = true;
                break;
            }
            sent += static_cast<std::size_t>(n);
        }
        return !broken_;
    }

    [[nodiscard]] bool broken() const { return broken_; }
    void mark_broken() { broken_ = true; }

    // Reads what is available into the buffer; false on EOF or error.
    bool fill() {
        std::array<char, 65536> chunk; // recv fills it: no need to zero 64 KiB a read
        const auto n = ::recv(fd_, chunk.data(), chunk.size(), 0);
        if (n <= 0) {
            if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
                return true;
            }
            broken_ = true;
            return false;
        }
        buffer_.append(chunk.data(), static_cast<std::size_t>(n));
        if (buffer_.size() > protocol::max_line && buffer_.find('\n') == std::string::npos) {
            broken_ = true;
            return false;
        }
        return true;
    }

    // The next complete line in the buffer, if any.
    std::optional<std::string> next_line() {
        const auto newline = buffer_.find('\n');
        if (newline == std::string::npos) {
            return std::nullopt;
        }
        std::string line = buffer_.substr(0, newline + 1);
        buffer_.erase(0, newline + 1);
        return line;
    }

    // Blocks up to `timeout` for one line.
    Result<std::string> read_line(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto line = next_line()) {
                return std::move(*line);
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return fail(ErrorCode::Timeout, "the master did not answer");
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) > 0 && !fill()) {
                return fail(ErrorCode::Io, "the master closed the connection");
            }
        }
    }

private:
    int fd_;
    std::mutex write_mutex_;
    std::atomic<bool> broken_{false};
    std::string buffer_;
};

Result<std::unique_ptr<Connection>> connect_to(const std::string& host, std::uint16_t port) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const auto service = std::to_string(port);
    if (const int code = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); code != 0) {
        return fail(ErrorCode::Io, fmt::format("resolve {}: {}", host, ::gai_strerror(code)));
    }
    std::string last_error = "no address";
    int fd = -1;
    for (auto* address = found; address != nullptr; address = address->ai_next) {
        fd =
            ::socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC, address->ai_protocol);
        if (fd < 0) {
            last_error = std::strerror(errno);
            continue;
        }
        if (::connect(fd, address->ai_addr, address->ai_addrlen) == 0) {
            break;
        }
        last_error = std::strerror(errno);
        ::close(fd);
        fd = -1;
    }
    ::freeaddrinfo(found);
    if (fd < 0) {
        return fail(ErrorCode::Io, fmt::format("connect to {}:{}: {}", host, port, last_error));
    }
    const int on = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    return std::make_unique<Connection>(fd);
}

// One build on its own thread.
struct Job {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
};

class Session {
public:
    Session(const WorkerOptions& options, Connection& connection)
        : options_(options), connection_(connection) {}

    ~Session() { stop_all(); }

    // Serves the master until the connection breaks (false) or draining is complete (true).
    bool serve(std::chrono::seconds heartbeat, const std::stop_token& drain) {
        auto next_heartbeat = std::chrono::steady_clock::now() + heartbeat;
        bool drain_sent = false;
        for (;;) {
            reap();
            if (drain.stop_requested()) {
                if (!drain_sent) {
                    status("draining: no new builds; finishing the running ones");
                    connection_.send(protocol::Drain{});
                    drain_sent = true;
                }
                if (running() == 0) {
                    return true;
                }
            }
            if (connection_.broken()) {
                return false;
            }
            const auto now = std::chrono::steady_clock::now();
            if (now >= next_heartbeat) {
                connection_.send(protocol::Heartbeat{});
                next_heartbeat = now + heartbeat;
            }
            // Lines already read (with the welcome, or by an earlier fill) first: the master may
            // send nothing more until they are answered.
            while (auto line = connection_.next_line()) {
                auto message = protocol::decode(*line);
                if (!message) {
                    log::warn("from the master: {}", message.error().message);
                    continue;
                }
                if (protocol::following_bytes(*message) != nullptr) {
                    // Only workers send log chunks: what follows could not be read as lines.
                    log::warn("from the master: a log chunk; closing the connection");
                    return false;
                }
                handle(std::move(*message), drain_sent);
            }
            pollfd p{connection_.fd(), POLLIN, 0};
            // Short polls: a drain request and finished builds are noticed quickly.
            if (::poll(&p, 1, 200) > 0 && !connection_.fill()) {
                return false;
            }
        }
    }

private:
    void status(const std::string& line) const {
        log::info("{}", line);
        if (options_.on_status) {
            options_.on_status(line);
        }
    }

    void handle(protocol::Message message, bool draining) {
        if (auto* start = std::get_if<protocol::StartBuild>(&message)) {
            const auto id = start->spec.build_id;
            if (draining) {
                // The master sent it before it saw our drain: refuse, it will be retried.
                connection_.send(
                    protocol::BuildFinished{id, BuildResult::Retry, "the worker is draining"});
                return;
            }
            const std::lock_guard lock(mutex_);
            if (jobs_.contains(id)) {
                log::warn("the master started build {} again while it runs here: ignored", id);
                return;
            }
            status(fmt::format(
                "build {} ({}, branch {}) started", id, start->spec.builder, start->spec.branch));
            auto done = std::make_shared<std::atomic<bool>>(false);
            jobs_.emplace(
                id,
                Job{std::jthread([this, spec = std::move(start->spec), done](std::stop_token stop) {
                        run(spec, std::move(stop));
                        *done = true;
                    }),
                    done});
        } else if (const auto* stop = std::get_if<protocol::StopBuild>(&message)) {
            const std::lock_guard lock(mutex_);
            if (auto found = jobs_.find(stop->build); found != jobs_.end()) {
                status(fmt::format("build {}: the master asked to stop it", stop->build));
                found->second.thread.request_stop();
            }
        }
    }

    void run(const build::BuildSpec& spec, std::stop_token stop) {
        const auto outcome = run_reported_build(
            spec,
            options_.runner,
            [this](const protocol::Message& message) { connection_.send(message); },
            std::move(stop));
        status(fmt::format("build {} ended: {}", spec.build_id, to_string(outcome.result)));
    }

    std::size_t running() {
        const std::lock_guard lock(mutex_);
        return jobs_.size();
    }

    void reap() {
        const std::lock_guard lock(mutex_);
        std::erase_if(jobs_, [](const auto& entry) { return entry.second.done->load(); });
    }

    void stop_all() {
        std::map<std::int64_t, Job> jobs;
        {
            const std::lock_guard lock(mutex_);
            jobs.swap(jobs_);
        }
        if (!jobs.empty()) {
            status(fmt::format("stopping {} build(s): the connection to the master is gone",
                               jobs.size()));
        }
        for (auto& [id, job] : jobs) {
            job.thread.request_stop();
        }
    }

    const WorkerOptions& options_;
    Connection& connection_;
    std::mutex mutex_;
    std::map<std::int64_t, Job> jobs_;
};

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

// Sleeps up to `delay`, waking early when a drain is requested. False when it was.
bool pause(std::chrono::milliseconds delay, const std::stop_token& drain) {
    const auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
        if (drain.stop_requested()) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return !drain.stop_requested();
}

} // namespace

build::BuildOutcome run_reported_build(const build::BuildSpec& spec,
                                       const build::RunnerOptions& options,
                                       const std::function<void(protocol::Message)>& send,
                                       std::stop_token stop) {
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
    auto outcome = build::run_build(spec, options, observer, std::move(stop));
    sender.send(protocol::BuildFinished{id, outcome.result, outcome.message});
    return outcome;
}

namespace {

// Answers the master's challenge and reads its welcome; returns the heartbeat interval. A
// latent worker's `secret` becomes the one both sides derive for its next login (rotate).
Result<std::chrono::seconds>
log_in(Connection& connection, const WorkerOptions& options, std::string& secret) {
    auto line = connection.read_line(std::chrono::seconds(30));
    if (!line) {
        return fail(line.error());
    }
    auto challenge = protocol::decode(*line);
    if (!challenge || !std::holds_alternative<protocol::Challenge>(*challenge)) {
        return fail(ErrorCode::Io, "the master did not send a challenge");
    }
    const auto& nonce = std::get<protocol::Challenge>(*challenge).nonce;
    connection.send(
        protocol::Hello{options.name, protocol::proof(secret, nonce), options.max_builds});
    line = connection.read_line(std::chrono::seconds(30));
    if (!line) {
        return fail(line.error());
    }
    auto answer = protocol::decode(*line);
    if (!answer) {
        return fail(answer.error());
    }
    if (const auto* refused = std::get_if<protocol::Refused>(&*answer)) {
        return fail(ErrorCode::PermissionDenied,
                    fmt::format("the master at {}:{} refused worker \"{}\": {}",
                                options.host,
                                options.port,
                                options.name,
                                refused->reason));
    }
    const auto* welcome = std::get_if<protocol::Welcome>(&*answer);
    if (welcome == nullptr) {
        return fail(ErrorCode::Io, "the master answered the hello with something else");
    }
    if (welcome->rotate) {
        secret = protocol::next_secret(secret, nonce);
        (void)log::add_secret(secret);
    }
    return std::chrono::seconds(std::max(1, welcome->heartbeat_seconds));
}

} // namespace

Status run_worker(const WorkerOptions& options, std::stop_token drain) {
    if (!options.runner.slots) {
        // One set of work directory slots for every build of this worker, across reconnections.
        WorkerOptions with_slots = options;
        with_slots.runner.slots = std::make_shared<build::WorkSlots>(options.runner.work_root);
        return run_worker(with_slots, std::move(drain));
    }
    const auto status = [&](const std::string& line) {
        log::info("{}", line);
        if (options.on_status) {
            options.on_status(line);
        }
    };
    std::mt19937_64 random(std::random_device{}());
    std::chrono::milliseconds delay(500);
    int failures = 0;
    // A latent worker's one-time token is replaced at each login by the secret both sides
    // derive for the next one (Welcome::rotate).
    std::string secret = options.secret;
    while (!drain.stop_requested()) {
        auto connected = connect_to(options.host, options.port);
        Result<std::chrono::seconds> welcomed = fail(ErrorCode::Io, "not connected");
        if (connected) {
            auto& connection = **connected;
            welcomed = log_in(connection, options, secret);
            if (welcomed) {
                status(fmt::format("connected to the master at {}:{} as {}",
                                   options.host,
                                   options.port,
                                   options.name));
                failures = 0;
                delay = std::chrono::milliseconds(500);
                Session session(options, connection);
                if (session.serve(*welcomed, drain)) {
                    status("drained: every build has ended");
                    return {};
                }
                status("lost the connection to the master");
                continue;
            }
            if (welcomed.error().code == ErrorCode::PermissionDenied) {
                return fail(welcomed.error());
            }
        }
        const auto& error = connected ? welcomed.error() : connected.error();
        ++failures;
        if (options.max_connect_attempts > 0 && failures >= options.max_connect_attempts) {
            return fail(ErrorCode::Io,
                        fmt::format("{} (gave up after {} attempts)", error.message, failures));
        }
        // Full jitter, as for AWS retries: many workers of a restarted master spread out.
        std::uniform_int_distribution<std::int64_t> spread(0, delay.count());
        const auto wait = std::chrono::milliseconds(delay.count() / 2 + spread(random) / 2);
        status(fmt::format("{}; trying again in {:.1f} s",
                           error.message,
                           static_cast<double>(wait.count()) / 1000.0));
        if (!pause(wait, drain)) {
            break;
        }
        delay = std::min<std::chrono::milliseconds>(delay * 2, options.max_reconnect_delay);
    }
    return {};
}

} // namespace ci::master
