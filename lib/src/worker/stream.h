#pragma once

// The worker protocol's byte stream, what both ends use (the agent, agent.cpp; the master's
// worker server, lib/src/master/worker_server.cpp): a TCP socket, with TLS over it once the
// handshake has begun, and line reads and writes on whichever of the two carries the protocol.
// Boost.Asio and OpenSSL types: include it only from those two files.

#include <optional>
#include <utility> // before Asio: Boost 1.74 uses std::exchange without including it

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

namespace ci::worker {

class ProtocolStream {
public:
    using Socket = boost::asio::ip::tcp::socket;

    explicit ProtocolStream(Socket socket) : socket_(std::move(socket)) {}

    Socket& socket() { return socket_; }

    /// From now on the protocol runs over TLS (the caller does the handshake on tls()).
    boost::asio::ssl::stream<Socket&>& start_tls(boost::asio::ssl::context& context) {
        return tls_.emplace(socket_, context);
    }

    /// The TLS stream, or nullptr without TLS.
    boost::asio::ssl::stream<Socket&>* tls() { return tls_ ? &*tls_ : nullptr; }

    /// The OpenSSL connection, or nullptr without TLS.
    SSL* native() { return tls_ ? tls_->native_handle() : nullptr; }

    /// Reads up to and including the next '\n' into `input` (whose max_size bounds a line:
    /// longer fails with boost::asio::error::not_found).
    template <class Handler> void async_read_line(boost::asio::streambuf& input, Handler handler) {
        visit([&](auto& stream) {
            boost::asio::async_read_until(stream, input, '\n', std::move(handler));
        });
    }

    /// Reads exactly `buffer`'s size.
    template <class Handler>
    void async_read_exactly(boost::asio::mutable_buffer buffer, Handler handler) {
        visit([&](auto& stream) { boost::asio::async_read(stream, buffer, std::move(handler)); });
    }

    /// Writes all of `buffer`.
    template <class Handler> void async_write(boost::asio::const_buffer buffer, Handler handler) {
        visit([&](auto& stream) { boost::asio::async_write(stream, buffer, std::move(handler)); });
    }

    /// Closes the socket (no TLS close: the peer learns from the TCP close, and a stuck peer
    /// cannot hold the connection open); pending operations end with operation_aborted.
    void close() {
        boost::system::error_code ignored;
        socket_.shutdown(Socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

    /// Whether `error` is the peer closing the connection (TCP end, or TLS without close_notify).
    static bool closed_by_peer(const boost::system::error_code& error) {
        return error == boost::asio::error::eof ||
               error == boost::asio::ssl::error::stream_truncated;
    }

private:
    template <class F> void visit(F&& f) {
        if (tls_) {
            f(*tls_);
        } else {
            f(socket_);
        }
    }

    Socket socket_;
    std::optional<boost::asio::ssl::stream<Socket&>> tls_; // before socket_ is destroyed
};

} // namespace ci::worker
