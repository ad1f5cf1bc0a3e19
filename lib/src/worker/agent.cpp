#include "ci/worker/agent.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility> // before Asio: Boost 1.74 uses std::exchange without including it

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <fmt/format.h>

#include <ci/config/worker_files.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/worker/imds.h>
#include <ci/worker/secret_state.h>

#include "master/protocol.h"
#include "worker/files.h"
#include "worker/reported_build.h"
#include "worker/stream.h"
#include "worker/tls.h"

namespace ci::worker {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
namespace protocol = master::protocol;
using Clock = std::chrono::steady_clock;

namespace {

// Bytes queued for the master beyond which a build's thread waits: its output is throttled by
// the network, as it was by blocking writes, and memory stays bounded.
constexpr std::size_t max_queued = std::size_t{8} * 1024 * 1024;
// Messages queued together are written together, up to this many bytes a write.
constexpr std::size_t write_batch = std::size_t{256} * 1024;

// One connection to the master, served by the agent's event loop (the thread that runs its
// io_context). send() may be called from any thread; everything else from the loop's thread.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    explicit Connection(tcp::socket socket)
        : stream_(std::move(socket)), input_(protocol::max_line) {}

    // Speaks TLS on the socket from now on: `prepare` readies the TLS object before the
    // handshake; its outcome is `done`'s.
    template <class Prepare, class Done>
    void handshake(ssl::context& context, Prepare prepare, Done done) {
        auto& tls = stream_.start_tls(context);
        prepare(tls.native_handle());
        tls.async_handshake(ssl::stream_base::client, std::move(done));
    }

    // The OpenSSL connection; nullptr without TLS.
    SSL* native() { return stream_.native(); }

    // Starts reading lines into the queue next_line() takes them from.
    void start() { read(); }

    // Queues `bytes` for the master. From a build's thread (`wait_for_room`), blocks while too
    // much is queued already; the loop's own thread never waits (it is the one that writes).
    // False once the connection is closed: the bytes are dropped.
    bool send(std::string bytes, bool wait_for_room) {
        std::unique_lock lock(mutex_);
        if (wait_for_room) {
            room_.wait(lock, [&] { return closed_ || queued_ < max_queued; });
        }
        if (closed_) {
            return false;
        }
        queued_ += bytes.size();
        outbox_.push_back(std::move(bytes));
        if (!writing_) {
            writing_ = true;
            net::post(stream_.socket().get_executor(),
                      [self = shared_from_this()] { self->write_next(); });
        }
        return true;
    }

    bool send(const protocol::Message& message, bool wait_for_room) {
        return send(protocol::encode(message), wait_for_room);
    }

    // The next whole line read, if any.
    std::optional<std::string> next_line() {
        if (lines_.empty()) {
            return std::nullopt;
        }
        auto line = std::move(lines_.front());
        lines_.pop_front();
        return line;
    }

    // Whether everything queued has been written.
    [[nodiscard]] bool flushed() {
        const std::lock_guard lock(mutex_);
        return queued_ == 0;
    }

    // Why the connection closed; nullopt while it is open.
    [[nodiscard]] const std::optional<std::string>& closed() const { return why_closed_; }

    void close(const std::string& why) {
        if (why_closed_) {
            return;
        }
        why_closed_ = why;
        {
            const std::lock_guard lock(mutex_);
            closed_ = true;
        }
        room_.notify_all();
        stream_.close();
    }

private:
    void read() {
        stream_.async_read_line(input_, [self = shared_from_this()](auto error, std::size_t size) {
            self->on_read(error, size);
        });
    }

    void on_read(const boost::system::error_code& error, std::size_t size) {
        if (error) {
            close(ProtocolStream::closed_by_peer(error) ? "the master closed the connection"
                  : error == net::error::not_found      ? "the master sent a line longer than the "
                                                          "protocol allows"
                                                        : error.message());
            return;
        }
        lines_.emplace_back(static_cast<const char*>(input_.data().data()), size);
        input_.consume(size);
        read();
    }

    void write_next() {
        {
            const std::lock_guard lock(mutex_);
            writing_buffer_.clear();
            while (!outbox_.empty() &&
                   (writing_buffer_.empty() ||
                    writing_buffer_.size() + outbox_.front().size() <= write_batch)) {
                writing_buffer_ += outbox_.front();
                outbox_.pop_front();
            }
            if (writing_buffer_.empty() || closed_) {
                writing_ = false;
                return;
            }
        }
        stream_.async_write(net::buffer(writing_buffer_),
                            [self = shared_from_this()](auto error, std::size_t written) {
                                if (error) {
                                    self->close(error.message());
                                    return;
                                }
                                {
                                    const std::lock_guard lock(self->mutex_);
                                    self->queued_ -= written;
                                }
                                self->room_.notify_all();
                                self->write_next();
                            });
    }

    ProtocolStream stream_;
    net::streambuf input_;
    std::deque<std::string> lines_;
    std::optional<std::string> why_closed_;
    std::string writing_buffer_; // what the write in flight sends (loop thread only)

    std::mutex mutex_; // guards what build threads touch: the outbox and the flags below
    std::condition_variable room_;
    std::deque<std::string> outbox_;
    std::size_t queued_ = 0;
    bool writing_ = false;
    bool closed_ = false;
};

// The agent's event loop, and the connection it serves at the moment.
class Loop {
public:
    Loop() = default;

    net::io_context& io() { return io_; }

    // Runs handlers until `done()` or `deadline`; false at the deadline.
    template <class Done> bool run_until(Done done, Clock::time_point deadline) {
        while (!done()) {
            const auto now = Clock::now();
            if (now >= deadline) {
                return false;
            }
            run_for(std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(200)));
        }
        return true;
    }

    // Runs handlers for up to `duration`, returning after the first one.
    void run_for(Clock::duration duration) {
        io_.run_one_for(duration);
        if (io_.stopped()) {
            io_.restart();
        }
    }

    // Runs the handlers left once a connection is closed (they see it closed), so that the
    // next connection starts from a clean loop.
    void settle() {
        io_.restart();
        while (io_.poll() > 0) {
        }
    }

private:
    net::io_context io_{1};
    // Keeps run_one_for waiting while no operation is pending (between connections).
    net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
};

using SessionPtr = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

// The worker's side of TLS: how it checks the master, and the session it resumes.
class TlsClient {
public:
    static Result<std::unique_ptr<TlsClient>> create(const WorkerOptions& options) {
        auto client = std::unique_ptr<TlsClient>(new TlsClient(options));
        SSL_CTX* native = client->context_.native_handle();
        SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
        if (!options.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(native, options.ca_file.c_str(), nullptr) != 1) {
                return fail(ErrorCode::InvalidArgument,
                            fmt::format("--ca {}: no CA certificates read ({})",
                                        options.ca_file,
                                        tls::last_error()));
            }
            SSL_CTX_set_verify(native, SSL_VERIFY_PEER, nullptr);
        } else {
            // Pinned: the certificate is compared after the handshake (check()); the chain
            // means nothing for a self-signed certificate.
            SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
        }
        // Tickets the master sends are kept for the next connection (resumption).
        SSL_CTX_set_session_cache_mode(native,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        // Not the context's app data: Asio keeps its verify callback there.
        SSL_CTX_set_ex_data(native, ex_index(), client.get());
        SSL_CTX_sess_set_new_cb(native, &TlsClient::on_new_session);
        return client;
    }

    ssl::context& context() { return context_; }

    // Before a handshake: the name the master is checked against, and the session to resume.
    void prepare(SSL* ssl) {
        boost::system::error_code not_ip;
        (void)net::ip::make_address(options_.host, not_ip); // only whether it parses
        if (!options_.ca_file.empty()) {
            if (not_ip) {
                SSL_set1_host(ssl, options_.host.c_str());
            } else {
                X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), options_.host.c_str());
            }
        }
        if (not_ip) {
            SSL_set_tlsext_host_name(ssl, options_.host.c_str());
        }
        if (session_) {
            // A copy: a handshake that fails marks its session not resumable, and the ticket
            // must outlive a failed attempt (a master restarting behind a proxy resets them).
            if (SSL_SESSION* copy = SSL_SESSION_dup(session_.get())) {
                SSL_set_session(ssl, copy);
                SSL_SESSION_free(copy); // SSL_set_session took its own reference
            }
        }
    }

    // Why a handshake failed, for people.
    std::string explain(SSL* ssl, const boost::system::error_code& error) const {
        const auto verified = SSL_get_verify_result(ssl);
        if (!options_.ca_file.empty() && verified != X509_V_OK) {
            return fmt::format("the master's certificate does not verify with --ca {}: {} (a "
                               "certificate for another host, or from another CA, or a "
                               "TLS-terminating proxy in between)",
                               options_.ca_file,
                               X509_verify_cert_error_string(verified));
        }
        return fmt::format("TLS handshake with the master failed: {} (does its worker port "
                           "speak TLS? A master with buildmaster.tls: false needs --insecure)",
                           error.message());
    }

    // After a handshake: a pinned certificate is the master's.
    Status check(SSL* ssl) const {
        if (options_.fingerprint.empty()) {
            return {};
        }
        const auto seen = tls::fingerprint(SSL_get0_peer_certificate(ssl));
        if (!crypto::constant_time_equal(seen, options_.fingerprint)) {
            return fail(ErrorCode::PermissionDenied,
                        fmt::format("the master's certificate has fingerprint {}, not the pinned "
                                    "{} (a TLS-terminating proxy in between, or a master whose "
                                    "certificate changed: see `ci-master fingerprint`)",
                                    seen.empty() ? "(none)" : seen,
                                    options_.fingerprint));
        }
        return {};
    }

private:
    explicit TlsClient(const WorkerOptions& options)
        : options_(options), context_(ssl::context::tls_client),
          session_(nullptr, SSL_SESSION_free) {}

    static int ex_index() {
        static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
        return index;
    }

    static int on_new_session(SSL* ssl, SSL_SESSION* session) {
        auto* self = static_cast<TlsClient*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index()));
        // A copy: the connection's own session is marked not resumable when the connection
        // ends without a TLS close (a master killed, a network cut), the usual way here.
        if (SSL_SESSION* copy = SSL_SESSION_dup(session)) {
            self->session_.reset(copy);
        }
        return 0; // OpenSSL keeps (and frees) its reference to `session`
    }

    const WorkerOptions& options_;
    ssl::context context_;
    SessionPtr session_;
};

// Connects to the master, and with `tls`, completes the TLS handshake and checks the master.
// Certificate problems fail with PermissionDenied (they do not fix themselves).
Result<std::shared_ptr<Connection>>
connect_to(Loop& loop, const WorkerOptions& options, TlsClient* tls) {
    const auto& host = options.host;
    const auto port = options.port;
    tcp::resolver resolver(loop.io());
    boost::system::error_code error;
    const auto found = resolver.resolve(host, std::to_string(port), error);
    if (error) {
        return fail(ErrorCode::Io, fmt::format("resolve {}: {}", host, error.message()));
    }
    tcp::socket socket(loop.io());
    std::optional<boost::system::error_code> connected;
    net::async_connect(
        socket, found, [&](const boost::system::error_code& e, const auto&) { connected = e; });
    if (!loop.run_until([&] { return connected.has_value(); },
                        Clock::now() + std::chrono::seconds(30))) {
        socket.close(error);
        loop.settle();
        return fail(ErrorCode::Timeout, fmt::format("connect to {}:{}: timed out", host, port));
    }
    if (*connected) {
        return fail(ErrorCode::Io,
                    fmt::format("connect to {}:{}: {}", host, port, connected->message()));
    }
    socket.set_option(tcp::no_delay(true), error);
    socket.set_option(net::socket_base::keep_alive(true), error);
    auto connection = std::make_shared<Connection>(std::move(socket));
    if (tls == nullptr) {
        // A TLS master answers a plaintext client's first bytes with a refusal saying so.
        connection->send(std::string("\n"), false);
        connection->start();
        return connection;
    }
    std::optional<boost::system::error_code> shaken;
    connection->handshake(
        tls->context(),
        [&](SSL* ssl) { tls->prepare(ssl); },
        [&shaken](const boost::system::error_code& e) { shaken = e; });
    const bool done =
        loop.run_until([&] { return shaken.has_value(); }, Clock::now() + std::chrono::seconds(30));
    Status outcome;
    if (!done) {
        outcome = fail(ErrorCode::Timeout,
                       fmt::format("TLS handshake with {}:{}: timed out", host, port));
    } else if (*shaken) {
        // A TLS-level failure (a certificate refused, a peer that does not speak TLS 1.3) does
        // not fix itself, unlike a connection reset: the worker gives up on it.
        const bool refused =
            shaken->category() == net::error::get_ssl_category() ||
            (!options.ca_file.empty() && SSL_get_verify_result(connection->native()) != X509_V_OK);
        outcome = fail(refused ? ErrorCode::PermissionDenied : ErrorCode::Io,
                       tls->explain(connection->native(), *shaken));
    } else {
        outcome = tls->check(connection->native());
    }
    if (!outcome) {
        connection->close("TLS failed");
        loop.settle(); // the handshake's handler runs now, while `shaken` lives
        return fail(outcome.error());
    }
    connection->start();
    return connection;
}

// One build on its own thread.
struct Job {
    std::jthread thread;
    std::shared_ptr<std::atomic<bool>> done;
};

// What the agent does on one authenticated connection: runs the builds it is sent.
class Session {
public:
    Session(const WorkerOptions& options,
            Loop& loop,
            std::shared_ptr<Connection> connection,
            const imds::Watcher* watcher)
        : options_(options), runner_(options.runner), loop_(loop),
          connection_(std::move(connection)), watcher_(watcher) {}

    ~Session() { stop_all(); }
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Serves the master until the connection breaks (false) or draining is complete (true).
    bool serve(std::chrono::seconds heartbeat, const std::stop_token& drain) {
        auto next_heartbeat = Clock::now() + heartbeat;
        bool drain_sent = false;
        for (;;) {
            reap();
            if (drain.stop_requested() || shutdown_) {
                if (!drain_sent) {
                    status("draining: no new builds; finishing the running ones");
                    connection_->send(protocol::Drain{}, false);
                    drain_sent = true;
                }
                if (running() == 0) {
                    return true;
                }
            }
            watch_instance(drain_sent);
            while (auto line = connection_->next_line()) {
                auto message = protocol::decode(*line);
                if (!message) {
                    log::warn("from the master: {}", message.error().message);
                    continue;
                }
                if (protocol::following_bytes(*message) != nullptr) {
                    // Only workers send log chunks: what follows could not be read as lines.
                    connection_->close("the master sent a log chunk");
                    break;
                }
                handle(std::move(*message), drain_sent || shutdown_ || interrupted_ || rebalanced_);
                if (failed_) {
                    break; // the connection is closed: nothing after the file is read
                }
            }
            if (const auto& closed = connection_->closed()) {
                log::info("connection to the master: {}", *closed);
                return false;
            }
            const auto now = Clock::now();
            if (now >= next_heartbeat) {
                connection_->send(protocol::Heartbeat{}, false);
                next_heartbeat = now + heartbeat;
            }
            // Short waits: a drain request and finished builds are noticed quickly.
            loop_.run_for(
                std::min<Clock::duration>(next_heartbeat - now, std::chrono::milliseconds(200)));
        }
    }

    // A worker file that cannot be written ends the connection and the worker (failed_): its
    // builds must not run without it, and retrying would fail the same way.
    [[nodiscard]] const std::optional<Error>& failed() const noexcept { return failed_; }
    // The master sent Shutdown: the worker exits once its builds end, or when the connection
    // drops first (it does not reconnect).
    [[nodiscard]] bool shutting_down() const noexcept { return shutdown_; }

private:
    // What the instance metadata service said, told to the master once per connection: an
    // interruption ends the running builds (the master retries them elsewhere at once), a
    // rebalance recommendation only stops new ones.
    void watch_instance(bool draining) {
        if (watcher_ == nullptr || interrupted_) {
            return;
        }
        const auto seen = watcher_->seen();
        if (seen.notice == imds::Notice::Interruption) {
            status(fmt::format("{}: telling the master; stopping the running builds, taking no "
                               "new ones",
                               seen.detail));
            connection_->send(protocol::Interrupted{seen.detail}, false);
            interrupted_ = true;
            const std::lock_guard lock(mutex_);
            for (auto& [id, job] : jobs_) {
                job.thread.request_stop();
            }
        } else if (seen.notice == imds::Notice::Rebalance && !rebalanced_ && !draining) {
            status(fmt::format("{}: asking the master for no new builds", seen.detail));
            connection_->send(protocol::Drain{}, false);
            rebalanced_ = true;
        }
    }

    void status(const std::string& line) const {
        log::info("{}", line);
        if (options_.on_status) {
            options_.on_status(line);
        }
    }

    // A file of the worker's class (worker_files), sent right after the welcome: written before
    // the next message (a StartBuild) is read. Its content never reaches a log: it is redacted
    // from this process's log lines and from the builds' logs.
    void receive(const protocol::WorkerFile& file) {
        for (auto& secret : config::worker_file_secrets(file.content)) {
            (void)log::add_secret(secret);
            runner_.log_secrets.push_back(std::move(secret));
        }
        // With --step-user the steps, which read the files, run as that user: the files are
        // theirs.
        if (auto written = write_worker_file(
                options_.runner.work_root, file.path, file.content, options_.runner.step_user);
            !written) {
            // Io whatever the cause: the worker's setup, not its command line, is wrong.
            failed_ = Error{ErrorCode::Io, written.error().message, written.error().native};
            connection_->close("a worker file could not be written");
            return;
        }
        status(fmt::format("wrote worker file \"{}\" (mode 0600)", log::field(file.path)));
    }

    void handle(protocol::Message message, bool draining) {
        if (const auto* file = std::get_if<protocol::WorkerFile>(&message)) {
            receive(*file);
        } else if (auto* start = std::get_if<protocol::StartBuild>(&message)) {
            const auto id = start->spec.build_id;
            if (draining) {
                // The master sent it before it saw our drain: refuse, it will be retried.
                connection_->send(
                    protocol::BuildFinished{id, BuildResult::Retry, "the worker is draining"},
                    false);
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
                Job{std::jthread([this, spec = std::move(start->spec), runner = runner_, done](
                                     std::stop_token stop) {
                        run(spec, runner, std::move(stop));
                        *done = true;
                    }),
                    done});
        } else if (std::holds_alternative<protocol::Shutdown>(message)) {
            if (!shutdown_) {
                status("the master asked this worker to shut down: it exits once its running "
                       "builds end");
                shutdown_ = true;
            }
        } else if (const auto* stop = std::get_if<protocol::StopBuild>(&message)) {
            const std::lock_guard lock(mutex_);
            if (auto found = jobs_.find(stop->build); found != jobs_.end()) {
                status(fmt::format("build {}: the master asked to stop it", stop->build));
                found->second.thread.request_stop();
            }
        } else if (MasterAnswers::is_answer(message)) {
            answers_.deliver(std::move(message));
        }
    }

    // On the build's thread: its messages go to the loop through the connection's queue.
    void
    run(const build::BuildSpec& spec, const build::RunnerOptions& runner, std::stop_token stop) {
        const auto outcome = run_reported_build(
            spec,
            runner,
            [connection = connection_](const protocol::Message& message) {
                connection->send(message, true);
            },
            std::move(stop),
            &answers_);
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
        // The jobs join here: their sends return at once, the connection being closed.
    }

    const WorkerOptions& options_;
    // options_.runner, with the worker files' contents among its log secrets (each build gets a
    // copy).
    build::RunnerOptions runner_;
    std::optional<Error> failed_; // a worker file could not be written
    Loop& loop_;
    std::shared_ptr<Connection> connection_;
    const imds::Watcher* watcher_; // null: not watched
    bool interrupted_ = false;     // Interrupted sent on this connection
    bool rebalanced_ = false;      // Drain sent for a rebalance recommendation
    bool shutdown_ = false;        // the master sent Shutdown
    MasterAnswers answers_;        // before jobs_: their threads wait on it
    std::mutex mutex_;
    std::map<std::int64_t, Job> jobs_;
};

// Sleeps up to `delay`, waking early when a drain is requested. False when it was.
bool pause(std::chrono::milliseconds delay, const std::stop_token& drain) {
    const auto until = Clock::now() + delay;
    while (Clock::now() < until) {
        if (drain.stop_requested()) {
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return !drain.stop_requested();
}

// How a connection is protected, for its status line.
std::string describe(SSL* ssl) {
    if (ssl == nullptr) {
        return "plaintext, --insecure";
    }
    return fmt::format("{}, {}",
                       SSL_get_version(ssl),
                       SSL_session_reused(ssl) == 1 ? "session resumed" : "full handshake");
}

// The next line from the master within `timeout`.
Result<std::string> read_line(Loop& loop, Connection& connection, std::chrono::seconds timeout) {
    std::optional<std::string> line;
    loop.run_until(
        [&] {
            line = connection.next_line();
            return line.has_value() || connection.closed().has_value();
        },
        Clock::now() + timeout);
    if (line) {
        return std::move(*line);
    }
    if (const auto& closed = connection.closed()) {
        return fail(ErrorCode::Io, *closed);
    }
    return fail(ErrorCode::Timeout, "the master did not answer");
}

// Answers the master's challenge and reads its welcome; returns the heartbeat interval. A
// latent worker's `secret` becomes the one both sides derive for its next login (rotate).
Result<std::chrono::seconds>
log_in(Loop& loop, Connection& connection, const WorkerOptions& options, std::string& secret) {
    auto line = read_line(loop, connection, std::chrono::seconds(30));
    if (!line) {
        return fail(line.error());
    }
    auto challenge = protocol::decode(*line);
    if (challenge) {
        if (const auto* refused = std::get_if<protocol::Refused>(&*challenge)) {
            // E.g. a TLS master refusing this --insecure worker.
            return fail(ErrorCode::PermissionDenied,
                        fmt::format("the master at {}:{} refused the connection: {}",
                                    options.host,
                                    options.port,
                                    refused->reason));
        }
    }
    if (!challenge || !std::holds_alternative<protocol::Challenge>(*challenge)) {
        return fail(ErrorCode::Io, "the master did not send a challenge");
    }
    // The proof covers this TLS connection's exporter value: relayed elsewhere, it is worthless.
    const auto nonce = protocol::bound_challenge(std::get<protocol::Challenge>(*challenge).nonce,
                                                 tls::exporter(connection.native()));
    connection.send(
        protocol::Hello{options.name, protocol::proof(secret, nonce), options.max_builds}, false);
    line = read_line(loop, connection, std::chrono::seconds(30));
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
    const int modes = static_cast<int>(!options.ca_file.empty()) +
                      static_cast<int>(!options.fingerprint.empty()) +
                      static_cast<int>(options.insecure);
    if (modes != 1) {
        return fail(ErrorCode::InvalidArgument,
                    "give exactly one way to check the master: --fingerprint sha256:HEX (what "
                    "`ci-master fingerprint` prints), --ca FILE, or --insecure (for a master with "
                    "buildmaster.tls: false)");
    }
    if (!options.fingerprint.empty()) {
        auto pinned = tls::parse_fingerprint(options.fingerprint);
        if (!pinned) {
            return fail(pinned.error());
        }
        if (*pinned != options.fingerprint) {
            WorkerOptions normalized = options;
            normalized.fingerprint = std::move(*pinned);
            return run_worker(normalized, std::move(drain));
        }
    }
    std::unique_ptr<TlsClient> tls;
    if (!options.insecure) {
        auto client = TlsClient::create(options);
        if (!client) {
            return fail(client.error());
        }
        tls = std::move(*client);
    }
    std::unique_ptr<imds::Watcher> watcher;
    if (!options.imds_url.empty()) {
        auto started = imds::Watcher::start(options.imds_url, options.imds_interval);
        if (!started) {
            return fail(started.error());
        }
        watcher = std::move(*started);
        status(fmt::format("watching the instance metadata at {} for spot interruptions",
                           options.imds_url));
    }
    Loop loop;
    std::mt19937_64 random(std::random_device{}());
    std::chrono::milliseconds delay(500);
    int failures = 0;
    // A latent worker's one-time token is replaced at each login by the secret both sides
    // derive for the next one (Welcome::rotate).
    std::string secret = options.secret;
    while (!drain.stop_requested()) {
        auto connected = connect_to(loop, options, tls.get());
        Result<std::chrono::seconds> welcomed = fail(ErrorCode::Io, "not connected");
        if (connected) {
            auto connection = *connected;
            const std::string proven = secret;
            welcomed = log_in(loop, *connection, options, secret);
            if (welcomed && secret != proven && !options.secret_state.empty()) {
                // Saved at once: an instance stopped from now on boots with this secret.
                if (auto saved = save_secret_state(options.secret_state, options.name, secret);
                    !saved) {
                    log::error("{}; a restart of this worker (an instance stopped and started "
                               "again) cannot log in",
                               saved.error().message);
                }
            }
            if (welcomed) {
                status(fmt::format("connected to the master at {}:{} as {} ({})",
                                   options.host,
                                   options.port,
                                   options.name,
                                   describe(connection->native())));
                if (options.insecure) {
                    log::warn("the connection to the master is not encrypted (--insecure): "
                              "builds, logs and commands cross the network in clear text");
                }
                failures = 0;
                delay = std::chrono::milliseconds(500);
                bool drained = false;
                bool shut_down = false;
                std::optional<Error> failed;
                {
                    Session session(options, loop, connection, watcher.get());
                    drained = session.serve(*welcomed, drain);
                    failed = session.failed();
                    shut_down = session.shutting_down();
                    // What was queued before the drain completed goes out before the close.
                    if (drained) {
                        (void)loop.run_until(
                            [&] { return connection->flushed() || connection->closed(); },
                            Clock::now() + std::chrono::seconds(10));
                    }
                    connection->close(drained ? "drained" : "lost");
                }
                loop.settle();
                if (failed) {
                    return fail(*failed);
                }
                if (drained) {
                    status(shut_down ? "shut down by the master: every build has ended"
                                     : "drained: every build has ended");
                    return {};
                }
                if (shut_down) {
                    status("lost the connection to the master while shutting down: exiting");
                    return {};
                }
                status("lost the connection to the master");
                continue;
            }
            connection->close("not logged in");
            loop.settle();
            if (welcomed.error().code == ErrorCode::PermissionDenied) {
                return fail(welcomed.error());
            }
        } else if (connected.error().code == ErrorCode::PermissionDenied) {
            return fail(connected.error());
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

} // namespace ci::worker
