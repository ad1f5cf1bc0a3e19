#include "master/worker_server.h"

#include <algorithm>
#include <array>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility> // before Asio: Boost 1.74 uses std::exchange without including it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fmt/format.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "master/coordinator.h"
#include "master/failure_limiter.h"
#include "worker/stream.h"
#include "worker/tls.h"

namespace ci::master {

namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;

namespace {

// The first byte of a TLS handshake record: anything else on a TLS worker port is a plaintext
// client (an old worker, one started with --insecure, or a scanner).
constexpr unsigned char tls_handshake_record = 0x16;

// What every connection shares. Lives on the server's I/O thread.
struct Shared {
    WorkerEvents& master;
    std::chrono::seconds heartbeat;
    std::optional<ssl::context> tls; // nullopt: plaintext (buildmaster.tls: false)
    WorkerPortLimits limits;
    std::map<std::string, ClassFiles> files; // by class: sent right after the Welcome
    // Wrong proofs, by address: a hello waits what remains of its address's delay.
    FailureLimiter throttle{"wrong worker proofs", FailureLimiter::worker_policy()};
    std::size_t open = 0;                                          // connections open
    std::map<std::string, std::size_t, std::less<>> per_address{}; // by address_key()
    log::Throttle refusals{std::chrono::seconds(10)};              // over the limits

    // A connection from `key` ended.
    void release(const std::string& key) {
        --open;
        if (const auto found = per_address.find(key);
            found != per_address.end() && --found->second == 0) {
            per_address.erase(found);
        }
    }
};

// The peer's address; an IPv4 peer of a dual-stack listener (::ffff:a.b.c.d) as a.b.c.d.
std::string peer_address(const tcp::socket& socket) {
    boost::system::error_code error;
    auto address = socket.remote_endpoint(error).address();
    if (error) {
        return "?";
    }
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
    }
    return address.to_string();
}

// One worker connection. Lives on the server's I/O thread; send() and close() may be called from
// any thread (they post to it).
class Session final : public Link, public std::enable_shared_from_this<Session> {
public:
    // `key`: the connection counts against the per-address limit under it (released by shut).
    Session(tcp::socket socket, Shared& shared, std::string address, std::string key)
        : stream_(std::move(socket)), input_(protocol::max_line), shared_(shared),
          timer_(stream_.socket().get_executor()), delay_(stream_.socket().get_executor()),
          address_(std::move(address)), key_(std::move(key)) {
        boost::system::error_code ignored;
        const auto endpoint = stream_.socket().remote_endpoint(ignored);
        peer_ = ignored ? std::string("?") : fmt::format("{}:{}", address_, endpoint.port());
    }

    void begin() {
        last_heard_ = std::chrono::steady_clock::now();
        watch(shared_.limits.hello_timeout);
        if (!shared_.tls) {
            log::warn("worker connection from {} is not encrypted (buildmaster.tls: false): "
                      "builds, logs and commands cross the network in clear text",
                      peer_);
            challenge();
            return;
        }
        // A TLS client speaks first; a plaintext one gets a plaintext answer saying why.
        stream_.socket().async_wait(
            tcp::socket::wait_read,
            [self = shared_from_this()](const boost::system::error_code& error) {
                self->on_first_bytes(error);
            });
    }

    void send(const protocol::Message& message) override {
        net::post(stream_.socket().get_executor(),
                  [self = shared_from_this(), line = protocol::encode(message)]() mutable {
                      self->write_line(std::move(line));
                  });
    }

    void close() override {
        net::post(stream_.socket().get_executor(),
                  [self = shared_from_this()] { self->shut("closed"); });
    }

private:
    void on_first_bytes(const boost::system::error_code& error) {
        if (error || !open_) {
            shut(error ? error.message() : "closed");
            return;
        }
        unsigned char first = 0;
        boost::system::error_code peeked;
        const auto size =
            stream_.socket().receive(net::buffer(&first, 1), tcp::socket::message_peek, peeked);
        if (peeked || size == 0) {
            shut(peeked ? peeked.message() : "disconnected");
            return;
        }
        if (first != tls_handshake_record) {
            // What it sent is read first: a socket closed with unread bytes sends a reset,
            // which could reach the client before the refusal does.
            std::array<char, 4096> unread; // receive() fills what it returns
            (void)stream_.socket().receive(net::buffer(unread), 0, peeked);
            log::warn("worker connection from {}: refused: it does not speak TLS (a plaintext "
                      "client; this master's worker port requires TLS)",
                      peer_);
            refuse("this master's worker port requires TLS: start ci-worker with --fingerprint "
                   "or --ca, not --insecure");
            return;
        }
        stream_.start_tls(*shared_.tls)
            .async_handshake(ssl::stream_base::server,
                             [self = shared_from_this()](const boost::system::error_code& failed) {
                                 self->on_handshake(failed);
                             });
    }

    void on_handshake(const boost::system::error_code& error) {
        if (!open_) {
            return;
        }
        if (error) {
            // Its reason (e.g. "certificate unknown" from a worker that refused the certificate)
            // helps whoever runs the worker; one line per connection, like a refusal.
            log::warn(
                "worker connection from {}: TLS handshake failed: {}", peer_, error.message());
            shut("TLS handshake failed");
            return;
        }
        SSL* native = stream_.native();
        exporter_ = worker::tls::exporter(native);
        if (exporter_.empty()) {
            log::warn("worker connection from {}: no TLS exporter value", peer_);
            shut("TLS exporter unavailable");
            return;
        }
        transport_ =
            fmt::format("{}, {}",
                        SSL_get_version(native),
                        SSL_session_reused(native) == 1 ? "session resumed" : "full handshake");
        challenge();
    }

    void challenge() {
        auto nonce = crypto::random_token(32);
        if (!nonce) {
            log::error("worker connection from {}: {}", peer_, nonce.error().message);
            shut("no nonce");
            return;
        }
        nonce_ = std::move(*nonce);
        write_line(protocol::encode(protocol::Challenge{nonce_}));
        read();
    }

    void read() {
        stream_.async_read_line(input_, [self = shared_from_this()](auto error, std::size_t size) {
            self->on_read(error, size);
        });
    }

    void on_read(const boost::system::error_code& error, std::size_t size) {
        if (error) {
            shut(worker::ProtocolStream::closed_by_peer(error) ? "disconnected"
                 : error == net::error::not_found ? "sent a line longer than the protocol allows"
                                                  : error.message());
            return;
        }
        const std::string_view line(static_cast<const char*>(input_.data().data()), size);
        last_heard_ = std::chrono::steady_clock::now();
        if (name_.empty() && (line == "\n" || line == "\r\n")) {
            // A plaintext worker's first bytes: a TLS master answers them with a refusal
            // (on_first_bytes) instead of waiting for a ClientHello that never comes.
            input_.consume(size);
            read();
            return;
        }
        auto message = protocol::decode(line);
        input_.consume(size);
        if (!message) {
            log::warn(
                "worker {} ({}): {}", name_.empty() ? "?" : name_, peer_, message.error().message);
            shut("protocol error");
            return;
        }
        auto* text = protocol::following_bytes(*message);
        if (text == nullptr || text->empty()) {
            handle(std::move(*message));
            return;
        }
        if (name_.empty()) {
            refuse("the first message must be a hello"); // its bytes are not even read
            return;
        }
        // The bytes after the line: those read with it first, then the rest straight from the
        // stream into the text (large reads, no search for a newline).
        const auto buffered = std::min(input_.size(), text->size());
        net::buffer_copy(net::buffer(*text), input_.data(), buffered);
        input_.consume(buffered);
        if (buffered == text->size()) {
            handle(std::move(*message));
            return;
        }
        auto pending = std::make_shared<protocol::Message>(std::move(*message));
        text = protocol::following_bytes(*pending);
        stream_.async_read_exactly(net::buffer(text->data() + buffered, text->size() - buffered),
                                   [self = shared_from_this(), pending](auto failed, std::size_t) {
                                       if (failed) {
                                           self->shut(worker::ProtocolStream::closed_by_peer(failed)
                                                          ? "disconnected"
                                                          : failed.message());
                                           return;
                                       }
                                       self->last_heard_ = std::chrono::steady_clock::now();
                                       self->handle(std::move(*pending));
                                   });
    }

    // A whole message: the hello first, then the worker's reports; reads the next one.
    void handle(protocol::Message message) {
        if (name_.empty()) {
            if (hello_seen_) {
                return; // a second message before the answer to the hello: not read further
            }
            hello_seen_ = true;
            // Repeated wrong proofs from one address: its hellos wait, longer each time.
            const auto wait = shared_.throttle.wait(address_, std::chrono::steady_clock::now());
            if (wait.count() > 0) {
                delay_.expires_after(wait);
                delay_.async_wait([self = shared_from_this(), message = std::move(message)](
                                      const boost::system::error_code& error) mutable {
                    if (!error && self->open_ && self->authenticate(message)) {
                        self->read();
                    }
                });
                return;
            }
            if (!authenticate(message)) {
                return;
            }
        } else if (!std::holds_alternative<protocol::Heartbeat>(message)) {
            shared_.master.message(name_, this, std::move(message));
        }
        if (open_) {
            read();
        }
    }

    bool authenticate(const protocol::Message& message) {
        const auto* hello = std::get_if<protocol::Hello>(&message);
        if (hello == nullptr) {
            refuse("the first message must be a hello");
            return false;
        }
        if (hello->protocol != protocol::version) {
            refuse(fmt::format(
                "protocol {} is not this master's {}", hello->protocol, protocol::version));
            return false;
        }
        // The same answer for an unknown name and a wrong secret: a scanner learns nothing.
        const auto login = shared_.master.login(
            hello->name, hello->proof, protocol::bound_challenge(nonce_, exporter_));
        if (!login) {
            log_wrong_proof(
                hello->name,
                shared_.throttle.count_failure(address_, std::chrono::steady_clock::now()));
            refuse("unknown worker or wrong secret");
            return false;
        }
        shared_.throttle.succeeded(address_);
        name_ = hello->name;
        write_line(protocol::encode(
            protocol::Welcome{static_cast<int>(shared_.heartbeat.count()), login->rotate}));
        // The class's files before anything else: the worker writes them before it reads the
        // next message, so no build of it runs without them.
        std::size_t files = 0;
        if (const auto found = shared_.files.find(login->worker_class);
            found != shared_.files.end()) {
            write_shared(found->second.messages); // shared: not copied for each worker
            files = found->second.count;
        }
        if (stream_.tls() != nullptr) {
            log::info("worker {} connected from {} ({}){}",
                      name_,
                      peer_,
                      transport_,
                      files > 0 ? fmt::format("; sent it {} worker file(s)", files) : "");
        } else {
            log::warn(
                "worker {} connected from {} without TLS (buildmaster.tls: false)", name_, peer_);
        }
        // The heartbeat watch replaces the hello deadline.
        watch(shared_.heartbeat);
        shared_.master.connected(name_, *login, false, shared_from_this());
        return true;
    }

    // One line per address per interval, with the count of those not logged before it.
    void log_wrong_proof(const std::string& name, const FailureLimiter::Failure& failure) const {
        if (failure.log_count == 0) {
            return;
        }
        std::string line =
            fmt::format("worker connection from {}: refused \"{}\": unknown worker or wrong secret",
                        address_,
                        log::field(name));
        if (failure.log_count > 1) {
            line +=
                fmt::format(" ({} more refused since the last such line)", failure.log_count - 1);
        }
        if (failure.failures > 1) {
            line += fmt::format("; its next hello waits {} ms", failure.delay.count());
        }
        log::warn("{}", line);
    }

    void refuse(std::string reason) {
        write_line(protocol::encode(protocol::Refused{std::move(reason)}));
        closing_after_write_ = true;
    }

    // Before the hello: closes the connection at the hello deadline. After it: closes a
    // connection that has said nothing for three heartbeat intervals.
    void watch(std::chrono::seconds interval) {
        timer_.expires_after(interval);
        timer_.async_wait([self = shared_from_this(),
                           interval](const boost::system::error_code& error) {
            if (error || !self->open_) {
                return;
            }
            if (self->name_.empty()) {
                if (!self->hello_seen_) {
                    self->shut(fmt::format("no hello within {} s", interval.count()));
                }
                return;
            }
            const auto silent = std::chrono::steady_clock::now() - self->last_heard_;
            if (silent > 3 * self->shared_.heartbeat) {
                self->shut(
                    fmt::format("no message for {} s",
                                std::chrono::duration_cast<std::chrono::seconds>(silent).count()));
                return;
            }
            self->watch(self->shared_.heartbeat);
        });
    }

    void write_line(std::string line) {
        write_shared(std::make_shared<const std::string>(std::move(line)));
    }

    void write_shared(std::shared_ptr<const std::string> text) {
        if (!open_ || !text) {
            return;
        }
        output_.push_back(std::move(text));
        if (output_.size() == 1) {
            write_next();
        }
    }

    void write_next() {
        stream_.async_write(net::buffer(*output_.front()),
                            [self = shared_from_this()](auto error, std::size_t) {
                                if (error) {
                                    self->shut(error.message());
                                    return;
                                }
                                self->output_.pop_front();
                                if (!self->output_.empty()) {
                                    self->write_next();
                                } else if (self->closing_after_write_) {
                                    self->shut("refused");
                                }
                            });
    }

    void shut(const std::string& why) {
        if (!open_) {
            return;
        }
        open_ = false;
        shared_.release(key_);
        timer_.cancel();
        delay_.cancel();
        stream_.close();
        if (!name_.empty()) {
            shared_.master.lost(name_, this, why);
        }
    }

    worker::ProtocolStream stream_; // TLS once the client has begun its handshake
    net::streambuf input_;
    Shared& shared_;
    net::steady_timer timer_;
    net::steady_timer delay_; // a hello's wait after wrong proofs from its address
    std::string address_;
    std::string key_; // address_key(address_)
    std::string peer_;
    std::string exporter_;  // hex; empty without TLS
    std::string transport_; // "TLSv1.3, session resumed", for the log
    std::string nonce_;
    std::string name_; // set once authenticated
    // Shared: a class's worker files are one text however many of its workers log in at once.
    std::deque<std::shared_ptr<const std::string>> output_;
    std::chrono::steady_clock::time_point last_heard_;
    bool open_ = true;
    bool hello_seen_ = false;
    bool closing_after_write_ = false;
};

Result<ssl::context> make_context(const WorkerPortTls& settings) {
    ssl::context context(ssl::context::tls_server);
    SSL_CTX* native = context.native_handle();
    // TLS 1.3 only: both sides are ours, and 1.3 has the exporter and tickets this needs.
    SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
    // An idle connection keeps no read or write buffer (1,000 idle workers).
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(native, settings.cert.c_str()) != 1) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("buildmaster.tls.cert: cannot use {}: {}",
                                settings.cert.string(),
                                worker::tls::last_error()));
    }
    if (SSL_CTX_use_PrivateKey_file(native, settings.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(native) != 1) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("buildmaster.tls.key: cannot use {} with {}: {}",
                                settings.key.string(),
                                settings.cert.string(),
                                worker::tls::last_error()));
    }
    static constexpr std::string_view session_context = "libci-worker";
    SSL_CTX_set_session_id_context(native,
                                   reinterpret_cast<const unsigned char*>(session_context.data()),
                                   static_cast<unsigned int>(session_context.size()));
    // Stateless tickets only; one per connection is enough for a worker's next reconnection.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(native, 1);
    if (!settings.ticket_keys.empty()) {
        std::string keys = settings.ticket_keys;
        if (SSL_CTX_set_tlsext_ticket_keys(native, keys.data(), static_cast<long>(keys.size())) !=
            1) {
            return fail(ErrorCode::InvalidArgument,
                        "worker port: session ticket keys refused: " + worker::tls::last_error());
        }
    }
    return context;
}

} // namespace

struct WorkerServer::Impl {
    Shared shared;
    net::io_context io{1};
    tcp::acceptor acceptor{io};
    std::thread thread;
    std::uint16_t port = 0;

    Impl(WorkerEvents& m, std::chrono::seconds h, WorkerPortLimits limits)
        : shared{m, h, std::nullopt, limits, {}} {}

    // Counts a new connection from `key` when the limits allow it.
    bool admit(const std::string& key) {
        auto& mine = shared.per_address[key];
        if (shared.open >= shared.limits.max_connections ||
            mine >= shared.limits.max_connections_per_address) {
            if (mine == 0) {
                shared.per_address.erase(key);
            }
            return false;
        }
        ++mine;
        ++shared.open;
        return true;
    }

    // Closes a connection over the limits at once: nothing is read or sent (not even TLS).
    void refuse(tcp::socket& socket, const std::string& address, const std::string& key) {
        if (const auto count = shared.refusals.count(); count > 0) {
            const auto found = shared.per_address.find(key);
            log::warn("worker port: {} connection(s) refused over the limits (the last from {}, "
                      "which had {} open of {} per address; {} open of {} in all)",
                      count,
                      address,
                      found == shared.per_address.end() ? 0 : found->second,
                      shared.limits.max_connections_per_address,
                      shared.open,
                      shared.limits.max_connections);
        }
        boost::system::error_code ignored;
        socket.close(ignored);
    }

    void accept() {
        acceptor.async_accept([this](const boost::system::error_code& error, tcp::socket socket) {
            if (error) {
                if (error != net::error::operation_aborted) {
                    log::warn("worker port: accept: {}", error.message());
                    if (acceptor.is_open()) {
                        accept();
                    }
                }
                return;
            }
            accept();
            auto address = peer_address(socket);
            auto key = address_key(address);
            if (!admit(key)) {
                refuse(socket, address, key);
                return;
            }
            boost::system::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            socket.set_option(net::socket_base::keep_alive(true), ignored);
            std::make_shared<Session>(std::move(socket), shared, std::move(address), key)->begin();
        });
    }
};

WorkerServer::WorkerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<WorkerServer>> WorkerServer::start(WorkerEvents& events,
                                                          const std::string& address,
                                                          std::uint16_t port,
                                                          std::chrono::seconds heartbeat,
                                                          const WorkerPortTls& tls,
                                                          WorkerPortLimits limits,
                                                          std::map<std::string, ClassFiles> files) {
    auto impl = std::make_unique<Impl>(events, heartbeat, limits);
    impl->shared.files = std::move(files);
    if (tls.enabled) {
        auto context = make_context(tls);
        if (!context) {
            return fail(context.error());
        }
        impl->shared.tls.emplace(std::move(*context));
    }
    boost::system::error_code error;
    const auto ip = net::ip::make_address(address, error);
    if (error) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("worker port: \"{}\" is not an IP address", address));
    }
    const tcp::endpoint endpoint(ip, port);
    auto& acceptor = impl->acceptor;
    if (acceptor.open(endpoint.protocol(), error);
        !error && (acceptor.set_option(net::socket_base::reuse_address(true), error), !error) &&
        (acceptor.bind(endpoint, error), !error)) {
        acceptor.listen(net::socket_base::max_listen_connections, error);
    }
    if (error) {
        return fail(
            ErrorCode::Io,
            fmt::format("listen on {}:{} (worker port): {}", address, port, error.message()),
            error.value());
    }
    impl->port = acceptor.local_endpoint().port();
    impl->accept();
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->io.run(); });
    return std::unique_ptr<WorkerServer>(new WorkerServer(std::move(impl)));
}

WorkerServer::~WorkerServer() {
    impl_->io.stop();
    if (impl_->thread.joinable()) {
        impl_->thread.join();
    }
}

std::uint16_t WorkerServer::port() const {
    return impl_->port;
}

void WorkerServer::stop_accepting() {
    net::post(impl_->io, [impl = impl_.get()] {
        boost::system::error_code ignored;
        impl->acceptor.close(ignored);
    });
}

} // namespace ci::master
