#include "master/worker_server.h"

#include <algorithm>
#include <deque>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <fmt/format.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "master/coordinator.h"

namespace ci::master {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// One worker connection. Lives on the server's I/O thread; send() and close() may be called from
// any thread (they post to it).
class Session final : public Link, public std::enable_shared_from_this<Session> {
public:
    Session(tcp::socket socket, WorkerEvents& master, std::chrono::seconds heartbeat)
        : socket_(std::move(socket)), input_(protocol::max_line), master_(master),
          heartbeat_(heartbeat), timer_(socket_.get_executor()) {
        boost::system::error_code ignored;
        const auto endpoint = socket_.remote_endpoint(ignored);
        peer_ = ignored ? std::string("?")
                        : fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
    }

    void begin() {
        auto nonce = crypto::random_token(32);
        if (!nonce) {
            log::error("worker connection from {}: {}", peer_, nonce.error().message);
            return;
        }
        nonce_ = std::move(*nonce);
        write_line(protocol::encode(protocol::Challenge{nonce_}));
        last_heard_ = std::chrono::steady_clock::now();
        watch();
        read();
    }

    void send(const protocol::Message& message) override {
        net::post(socket_.get_executor(),
                  [self = shared_from_this(), line = protocol::encode(message)]() mutable {
                      self->write_line(std::move(line));
                  });
    }

    void close() override {
        net::post(socket_.get_executor(), [self = shared_from_this()] { self->shut("closed"); });
    }

private:
    void read() {
        net::async_read_until(
            socket_, input_, '\n', [self = shared_from_this()](auto error, std::size_t size) {
                self->on_read(error, size);
            });
    }

    void on_read(const boost::system::error_code& error, std::size_t size) {
        if (error) {
            shut(error == net::error::eof         ? "disconnected"
                 : error == net::error::not_found ? "sent a line longer than the protocol allows"
                                                  : error.message());
            return;
        }
        const std::string_view line(static_cast<const char*>(input_.data().data()), size);
        last_heard_ = std::chrono::steady_clock::now();
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
        // socket into the text (large reads, no search for a newline).
        const auto buffered = std::min(input_.size(), text->size());
        net::buffer_copy(net::buffer(*text), input_.data(), buffered);
        input_.consume(buffered);
        if (buffered == text->size()) {
            handle(std::move(*message));
            return;
        }
        auto pending = std::make_shared<protocol::Message>(std::move(*message));
        text = protocol::following_bytes(*pending);
        net::async_read(socket_,
                        net::buffer(text->data() + buffered, text->size() - buffered),
                        [self = shared_from_this(), pending](auto failed, std::size_t) {
                            if (failed) {
                                self->shut(failed == net::error::eof ? "disconnected"
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
            if (!authenticate(message)) {
                return;
            }
        } else if (!std::holds_alternative<protocol::Heartbeat>(message)) {
            master_.message(name_, this, std::move(message));
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
        const auto login = master_.login(hello->name, hello->proof, nonce_);
        if (!login) {
            log::warn("worker connection from {}: refused \"{}\": unknown worker or wrong secret",
                      peer_,
                      log::field(hello->name));
            refuse("unknown worker or wrong secret");
            return false;
        }
        name_ = hello->name;
        write_line(protocol::encode(
            protocol::Welcome{static_cast<int>(heartbeat_.count()), login->rotate}));
        log::info("worker {} connected from {}", name_, peer_);
        master_.connected(name_, *login, false, shared_from_this());
        return true;
    }

    void refuse(std::string reason) {
        write_line(protocol::encode(protocol::Refused{std::move(reason)}));
        closing_after_write_ = true;
    }

    // Closes a connection that has said nothing for three heartbeat intervals.
    void watch() {
        timer_.expires_after(heartbeat_);
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& error) {
            if (error || !self->open_) {
                return;
            }
            const auto silent = std::chrono::steady_clock::now() - self->last_heard_;
            // Before the hello, one interval is enough.
            if (silent > (self->name_.empty() ? 1 : 3) * self->heartbeat_) {
                self->shut(
                    fmt::format("no message for {} s",
                                std::chrono::duration_cast<std::chrono::seconds>(silent).count()));
                return;
            }
            self->watch();
        });
    }

    void write_line(std::string line) {
        if (!open_) {
            return;
        }
        output_.push_back(std::move(line));
        if (output_.size() == 1) {
            write_next();
        }
    }

    void write_next() {
        net::async_write(socket_,
                         net::buffer(output_.front()),
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
        boost::system::error_code ignored;
        timer_.cancel();
        socket_.shutdown(tcp::socket::shutdown_both, ignored);
        socket_.close(ignored);
        if (!name_.empty()) {
            master_.lost(name_, this, why);
        }
    }

    tcp::socket socket_;
    net::streambuf input_;
    WorkerEvents& master_;
    std::chrono::seconds heartbeat_;
    net::steady_timer timer_;
    std::string peer_;
    std::string nonce_;
    std::string name_; // set once authenticated
    std::deque<std::string> output_;
    std::chrono::steady_clock::time_point last_heard_;
    bool open_ = true;
    bool closing_after_write_ = false;
};

} // namespace

struct WorkerServer::Impl {
    WorkerEvents& master;
    std::chrono::seconds heartbeat;
    net::io_context io{1};
    tcp::acceptor acceptor{io};
    std::thread thread;
    std::uint16_t port = 0;

    Impl(WorkerEvents& m, std::chrono::seconds h) : master(m), heartbeat(h) {}

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
            boost::system::error_code ignored;
            socket.set_option(tcp::no_delay(true), ignored);
            socket.set_option(net::socket_base::keep_alive(true), ignored);
            std::make_shared<Session>(std::move(socket), master, heartbeat)->begin();
            accept();
        });
    }
};

WorkerServer::WorkerServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<WorkerServer>> WorkerServer::start(WorkerEvents& events,
                                                          const std::string& address,
                                                          std::uint16_t port,
                                                          std::chrono::seconds heartbeat) {
    auto impl = std::make_unique<Impl>(events, heartbeat);
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
