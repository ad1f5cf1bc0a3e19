// The HTTP/1.1 server over Boost.Beast (Asio underneath).
//
// Ownership: Server owns a shared Server::Impl, which owns the io_context, the listener, the
// registry of open connections (strong references) and the I/O threads. A Connection is kept
// alive by the registry and by its pending operations; it refers to the Impl by reference.
// Every Reply and ResponseStream holds the Impl strongly and its Connection weakly: after ~Server
// (threads joined, sockets closed, registry cleared) they can still post into the stopped
// io_context safely, and nothing ever runs there again. Nothing the io_context owns holds the Impl
// strongly, so the Impl is never destroyed from inside its own io_context.
//
// Per request, the connection parses straight into a reused ServerRequest (no intermediate Beast
// message), formats the response head into a reused string and writes head and body with one
// gather write. A handler that answers on the server thread is served inline (no post).

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <ctime>
#include <exception>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/http/request.h>
#include <ci/http/server.h>

#include "core/ascii.h"
#include "http/request_parser.h"

namespace ci::http {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;
using Fields = std::vector<std::pair<std::string, std::string>>;

namespace {

using namespace std::chrono_literals;

// How much a request body's storage may keep between requests on one connection.
constexpr std::size_t kept_body_capacity = std::size_t{64} * 1024;
// While a stream is sent, bytes the client sends ahead (its next request) are buffered up to
// this much; beyond it the server stops reading until the stream ends.
constexpr std::size_t max_read_ahead = std::size_t{64} * 1024;
constexpr std::size_t background_read_size = std::size_t{16} * 1024;
// A connection's read buffer, allocated when its first request starts: Beast reads as much as
// the buffer has room for, at least 512 bytes, and its parser consumes what it parsed, so a
// buffer left to grow by itself stays near 512 bytes and a 4 KiB webhook costs 8 reads (and 8
// trips through the event loop). Most requests arrive in one read with this.
constexpr std::size_t read_buffer_size = std::size_t{8} * 1024;
// After a response that ends its connection, the longest the server reads and discards what the
// client still sends: closing with unread data would reset the connection and could destroy the
// response in flight.
constexpr SteadyClock::duration linger_time = 2s;

// How long a client is asked to wait before it tries again after a 503 for lack of room.
constexpr std::string_view retry_after_seconds = "5";
// Connections over the limits and bodies over the budget are logged once per interval.
constexpr auto refusal_log_interval = 10s;

constexpr std::string_view continue_response = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr std::string_view connection_refusal =
    "HTTP/1.1 503 Service Unavailable\r\nServer: libci\r\nRetry-After: 5\r\n"
    "Content-Type: application/json\r\nContent-Length: 57\r\nConnection: close\r\n\r\n"
    "{\"error\":\"too many connections; try again in 5 seconds\"}\n";
constexpr std::string_view last_chunk = "0\r\n\r\n";
constexpr std::string_view crlf = "\r\n";

std::string_view reason_phrase(int status) {
    const auto reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
    if (reason.empty() || reason.front() == '<') {
        return "Unknown";
    }
    return {reason.data(), reason.size()};
}

// The fields the server writes itself; a handler's copies would contradict them.
bool is_server_field(std::string_view name) noexcept {
    return ascii_iequals(name, "content-length") || ascii_iequals(name, "transfer-encoding") ||
           ascii_iequals(name, "connection") || ascii_iequals(name, "server") ||
           ascii_iequals(name, "date");
}

bool is_safe_field_text(std::string_view text) noexcept {
    return text.find_first_of("\r\n") == std::string_view::npos;
}

bool is_safe_field_name(std::string_view name) noexcept {
    return !name.empty() && name.find_first_of("\r\n: \t") == std::string_view::npos;
}

// A request's Transfer-Encoding as RFC 9112 (6.1, 6.3) has the server treat it: a coding other
// than chunked (and the no-op identity) is not understood, 501; chunked that is not the last
// coding leaves the body's length unknown, 400. Both end the connection (the body is not
// read: it would be taken for the next request). nullopt: the request may be read.
std::optional<std::pair<int, std::string_view>>
check_transfer_coding(const ServerRequest& request) {
    bool chunked_seen = false;
    bool chunked_last = false;
    bool present = false;
    for (const auto& [name, value] : request.headers) {
        if (name != "transfer-encoding") {
            continue;
        }
        present = true;
        std::string_view rest = value;
        while (!rest.empty()) {
            const auto comma = rest.find(',');
            auto coding = rest.substr(0, comma);
            const auto first = coding.find_first_not_of(" \t");
            coding = first == std::string_view::npos
                         ? std::string_view()
                         : coding.substr(first, coding.find_last_not_of(" \t") - first + 1);
            rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
            if (coding.empty()) {
                continue;
            }
            if (ascii_iequals(coding, "chunked")) {
                chunked_seen = true;
                chunked_last = true;
            } else if (ascii_iequals(coding, "identity")) {
                chunked_last = false;
            } else {
                return std::pair{501,
                                 std::string_view("unsupported transfer coding (only chunked)")};
            }
        }
    }
    if (present && chunked_seen && !chunked_last) {
        return std::pair{400,
                         std::string_view("bad request: chunked must be the last transfer coding")};
    }
    return std::nullopt;
}

// "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n", formatted once a second per thread.
void append_date_field(std::string& out) {
    struct Cache {
        std::time_t second = -1;
        std::array<char, 48> text{};
        std::size_t size = 0;
    };
    thread_local Cache cache;
    const std::time_t now = std::time(nullptr);
    if (now != cache.second) {
        static constexpr std::array<std::string_view, 7> days = {
            "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static constexpr std::array<std::string_view, 12> months = {
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        std::tm parts{};
        gmtime_r(&now, &parts);
        const auto result = fmt::format_to_n(cache.text.data(),
                                             cache.text.size(),
                                             "Date: {}, {:02} {} {} {:02}:{:02}:{:02} GMT\r\n",
                                             days[static_cast<std::size_t>(parts.tm_wday % 7)],
                                             parts.tm_mday,
                                             months[static_cast<std::size_t>(parts.tm_mon % 12)],
                                             parts.tm_year + 1900,
                                             parts.tm_hour,
                                             parts.tm_min,
                                             parts.tm_sec);
        cache.size = std::min(result.size, cache.text.size());
        cache.second = now;
    }
    out.append(cache.text.data(), cache.size);
}

// "listen on 127.0.0.1:8010", "listen on [::1]:8010".
std::string describe_listen(std::string_view address, std::uint16_t port) {
    if (address.find(':') != std::string_view::npos) {
        return fmt::format("listen on [{}]:{}", address, port);
    }
    return fmt::format("listen on {}:{}", address, port);
}

net::ip::address peer_ip(const tcp::socket& socket) {
    error_code ec;
    const auto endpoint = socket.remote_endpoint(ec);
    if (ec) {
        return {};
    }
    auto address = endpoint.address();
    // A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d; callers expect a.b.c.d.
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
        address = net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6());
    }
    return address;
}

// Whose connections count together against max_connections_per_address: an IPv4 address, or an
// IPv6 address's /64 (one host usually has a whole /64 to pick addresses from).
std::string address_key(const net::ip::address& address) {
    if (!address.is_v6()) {
        return address.to_string();
    }
    auto bytes = address.to_v6().to_bytes();
    std::fill(bytes.begin() + 8, bytes.end(), 0);
    return net::ip::address_v6(bytes).to_string() + "/64";
}

} // namespace

namespace detail {

// What a ResponseStream hands to its connection. Guarded by `mutex` except `closed`.
struct StreamChannel {
    std::mutex mutex;
    std::vector<std::string> pending; ///< chunks queued, not yet taken by the connection
    bool wake_posted = false;         ///< a pump of the connection is on its way
    bool finish_requested = false;
    bool abandoned = false;          ///< the stream was destroyed without finish()
    std::atomic<bool> closed{false}; ///< the client or the connection is gone
    /// A sized stream (stream_sized): the body's length, and the bytes accepted so far.
    std::optional<std::uint64_t> length;
    std::uint64_t accepted = 0;
    std::size_t queued = 0;           ///< bytes written by the producer, not yet sent
    std::size_t drained_below = 0;    ///< when_drained's low water
    std::function<void()> on_drained; ///< when_drained's callback, until it runs

    /// Takes the drain callback when it is due (queued at most its low water, or closed).
    /// Called with `mutex` held.
    std::function<void()> take_due_callback() {
        if (on_drained && (closed || queued <= drained_below)) {
            return std::exchange(on_drained, nullptr);
        }
        return nullptr;
    }
};

} // namespace detail

/// The server's state; see the comment at the top of this file for who owns what.
class Server::Impl : public std::enable_shared_from_this<Server::Impl> {
public:
    Impl(ServerOptions options, Handler handler);

    [[nodiscard]] Status listen();
    void start_threads();
    void stop();
    void stop_accepting();

    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] std::size_t connection_count() const;
    [[nodiscard]] const ServerOptions& options() const noexcept { return options_; }
    [[nodiscard]] const Handler& handler() const noexcept { return handler_; }
    [[nodiscard]] bool stopped() const noexcept { return stopped_.load(); }
    [[nodiscard]] bool accepting() const noexcept { return accepting_.load(); }

    /// Removes a closing connection from the registry (no-op once ~Server took the registry).
    void unregister(detail::Connection& connection);

    /// Queues `action` behind the handlers that are ready now (see Reply::defer).
    void defer(std::function<void()> action) { net::post(io_, std::move(action)); }

    [[nodiscard]] BodyBudget& body_budget() noexcept { return body_budget_; }

    /// Counts a request refused for lack of room (body memory); logs now and then.
    void log_refusal(std::string_view what, const std::string& address);

private:
    void accept_next();
    void on_accept(error_code ec, tcp::socket socket);
    [[nodiscard]] net::any_io_executor connection_executor();

    const ServerOptions options_;
    Handler handler_;
    BodyBudget body_budget_;
    ci::log::Throttle connection_refusals_{refusal_log_interval};
    ci::log::Throttle body_refusals_{refusal_log_interval};
    std::atomic<bool> stopped_{false};
    std::atomic<bool> accepting_{true};
    std::uint16_t port_ = 0;
    // Declared before everything that uses it, so destroyed after them.
    net::io_context io_;
    net::executor_work_guard<net::io_context::executor_type> work_;
    // The acceptor is used from the accept handler (any server thread) and from stop_accepting()
    // (any thread); the mutex serializes every call on it.
    std::mutex acceptor_mutex_;
    tcp::acceptor acceptor_;
    net::steady_timer accept_retry_timer_;
    mutable std::mutex connections_mutex_;
    std::list<std::shared_ptr<detail::Connection>> connections_;
    std::map<std::string, std::size_t, std::less<>> per_address_; ///< open connections by key
    std::vector<std::thread> threads_;
};

namespace detail {

/// One client connection: reads a request, hands it to the handler, writes the answer (whole or
/// streamed), and repeats while the connection is kept alive. Every member function runs on the
/// connection's executor (a strand when the server has several threads), except while ~Server
/// closes it after the threads were joined.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server::Impl& server, tcp::socket socket, std::string address_key)
        : server_(server), socket_(std::move(socket)), timer_(socket_.get_executor()),
          remote_address_(peer_ip(socket_).to_string()), address_key_(std::move(address_key)),
          body_share_(server.body_budget()) {}

    [[nodiscard]] net::any_io_executor executor() { return socket_.get_executor(); }

    void start() {
        buffer_.reserve(read_buffer_size);
        read_request();
    }

    void answer(ServerResponse response);
    void start_stream(int status,
                      const std::string& content_type,
                      const Fields& fields,
                      std::shared_ptr<StreamChannel> channel);
    void pump_stream();
    void close_if_idle();
    void close();

private:
    friend class ci::http::Server::Impl;

    enum class Phase {
        Reading,         ///< reading a request (or waiting for one)
        Handling,        ///< the handler has the request; waiting for the answer
        Writing,         ///< writing a whole response
        Streaming,       ///< writing a chunked response as the stream produces it
        AwaitingRequest, ///< a stream ended; a read begun during it will bring the next request
        Closing,         ///< the last response was sent; discarding input until the client closes
        Closed,
    };

    void read_request();
    void read_header();
    void on_header();
    [[nodiscard]] bool body_pending() const;
    void read_body();
    void on_read_error(error_code ec);
    void handle_request();
    void respond_error(int status, std::string_view message, bool retry_later = false);
    void on_response_written(error_code ec);
    void append_status_line(int status);
    void append_connection_field();
    void append_extra_fields(const Fields& fields);
    void on_stream_written(error_code ec);
    void end_stream(bool complete);
    void read_in_background();
    void on_background_read(error_code ec, std::size_t bytes);
    void graceful_close();
    void arm_deadline(SteadyClock::duration timeout) {
        arm_deadline_at(SteadyClock::now() + timeout);
    }
    void arm_deadline_at(SteadyClock::time_point when);
    void disarm_deadline() noexcept { deadline_ = SteadyClock::time_point::max(); }
    void wait_for_deadline(SteadyClock::time_point when);
    void on_deadline(error_code ec);

    Server::Impl& server_;
    tcp::socket socket_;
    net::steady_timer timer_;
    const std::string remote_address_;
    const std::string address_key_; ///< see address_key()

    Phase phase_ = Phase::Reading;
    bool closed_ = false;
    bool keep_alive_ = true;
    bool http10_ = false;
    bool head_request_ = false;

    beast::flat_buffer buffer_;
    BodyShare body_share_; ///< what request_.body holds of the server's budget
    std::optional<RequestParser> parser_;
    ServerRequest request_;
    SteadyClock::time_point request_started_{}; ///< its first byte; {} before it arrived
    bool background_read_pending_ = false;

    std::string head_; ///< the response head being written
    std::string body_; ///< the response body being written

    std::shared_ptr<StreamChannel> stream_channel_;
    std::vector<std::string> stream_batch_; ///< chunks being written
    std::string chunk_sizes_;               ///< their "size\r\n" lines, back to back
    std::vector<net::const_buffer> stream_buffers_;
    bool stream_head_pending_ = false;
    bool stream_writing_ = false;
    bool stream_finishing_ = false;
    bool stream_abandoning_ = false;
    bool sized_stream_ = false;        ///< the stream has a Content-Length: no chunk framing
    bool resume_after_cancel_ = false; ///< end_stream cancelled the background read

    // A lazy deadline: moving it later costs nothing; the timer re-waits when it fires early.
    SteadyClock::time_point deadline_ = SteadyClock::time_point::max();
    bool timer_waiting_ = false;

    // Guarded by Server::Impl::connections_mutex_.
    std::list<std::shared_ptr<Connection>>::iterator registry_position_;
    bool registered_ = false;
};

void Connection::read_request() {
    if (closed_) {
        return;
    }
    if (!server_.accepting() && buffer_.size() == 0) {
        close();
        return;
    }
    phase_ = Phase::Reading;
    request_.method.clear();
    request_.target.clear();
    request_.path.clear();
    if (!request_.query.empty()) {
        request_.query.clear();
    }
    if (request_.body.capacity() > kept_body_capacity) {
        std::string().swap(request_.body);
    } else {
        request_.body.clear();
    }
    body_share_.give_all();
    parser_.emplace(request_, body_share_);
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(server_.options().max_header, std::uint32_t{0xffffffff})));
    parser_->body_limit(static_cast<std::uint64_t>(server_.options().max_body));
    parser_->eager(false); // stop after the header: the route decides how large a body may be
    request_started_ = {};
    arm_deadline(server_.options().idle_timeout);
    read_header();
}

// Parses what the buffer holds and reads more until the header is complete. Read here rather
// than with Beast's async_read_header, which returns only once a whole line or header arrived:
// the header's deadline starts at its first byte.
void Connection::read_header() {
    if (closed_) {
        return;
    }
    while (buffer_.size() > 0) {
        error_code ec;
        const auto used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (request_started_ == SteadyClock::time_point() && parser_->got_some()) {
            request_started_ = SteadyClock::now();
            arm_deadline_at(request_started_ + server_.options().header_timeout);
        }
        if (ec == bhttp::error::need_more) {
            if (used == 0) {
                break;
            }
            continue;
        }
        if (ec) {
            on_read_error(ec);
            return;
        }
        if (parser_->is_header_done()) {
            on_header();
            return;
        }
        if (used == 0) {
            break;
        }
    }
    socket_.async_read_some(buffer_.prepare(beast::read_size(buffer_, read_buffer_size)),
                            [self = shared_from_this()](error_code ec, std::size_t bytes) {
                                if (self->closed_) {
                                    return;
                                }
                                if (ec) {
                                    self->close(); // end of input, a reset, or the deadline
                                    return;
                                }
                                self->buffer_.commit(bytes);
                                self->read_header();
                            });
}

bool Connection::body_pending() const {
    return !parser_->is_done();
}

void Connection::on_header() {
    phase_ = Phase::Handling;
    http10_ = parser_->http_version() < 11;
    head_request_ = request_.method == "HEAD";
    split_target(request_);
    request_.remote_address.assign(remote_address_);
    if (const auto& client = server_.options().client_address) {
        request_.remote_address = client(remote_address_, request_);
    }
    if (const auto refused = check_transfer_coding(request_)) {
        respond_error(refused->first, refused->second);
        return;
    }
    std::size_t max_body = server_.options().max_body;
    if (const auto& check = server_.options().check_header) {
        std::optional<ServerResponse> refused;
        try {
            refused = check(request_, max_body);
        } catch (const std::exception& error) {
            ci::log::error("HTTP header check for {} \"{}\" threw: {}",
                           ci::log::field(request_.method, 32),
                           ci::log::field(request_.path),
                           error.what());
            refused = ServerResponse{500, "application/json", {}, R"({"error":"internal error"})"};
        }
        if (refused) {
            // What the client sends after the header is not read: the connection ends.
            keep_alive_ = !body_pending() && parser_->keep_alive() && server_.accepting();
            disarm_deadline();
            answer(std::move(*refused));
            return;
        }
    }
    if (const auto length = parser_->content_length(); length && *length > max_body) {
        respond_error(413, "request body too large");
        return;
    }
    parser_->body_limit(static_cast<std::uint64_t>(max_body));
    if (!body_pending()) {
        handle_request();
        return;
    }
    if (const auto length = parser_->content_length();
        length && !body_share_.hold(static_cast<std::size_t>(*length))) {
        server_.log_refusal("a request body", remote_address_);
        respond_error(503, "the server holds too many request bodies now; try again later", true);
        return;
    }
    if (parser_->expects_continue() && !http10_) {
        // curl waits a second for this before it sends a large body.
        phase_ = Phase::Reading;
        net::async_write(socket_,
                         net::buffer(continue_response.data(), continue_response.size()),
                         [self = shared_from_this()](error_code write_error, std::size_t) {
                             if (write_error) {
                                 self->close();
                             } else {
                                 self->read_body();
                             }
                         });
        return;
    }
    read_body();
}

void Connection::read_body() {
    if (closed_) {
        return;
    }
    phase_ = Phase::Reading;
    parser_->eager(true);
    arm_deadline_at(request_started_ + server_.options().request_timeout);
    bhttp::async_read(
        socket_, buffer_, *parser_, [self = shared_from_this()](error_code ec, std::size_t) {
            if (ec) {
                self->on_read_error(ec);
            } else {
                self->handle_request();
            }
        });
}

void Connection::on_read_error(error_code ec) {
    if (closed_) {
        return;
    }
    if (parser_->over_budget()) {
        server_.log_refusal("a request body", remote_address_);
        respond_error(503, "the server holds too many request bodies now; try again later", true);
    } else if (ec == bhttp::error::body_limit) {
        respond_error(413, "request body too large");
    } else if (ec == bhttp::error::header_limit) {
        respond_error(431, "request header too large");
    } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
               ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        ci::log::trace("HTTP {}: bad request: {}", remote_address_, ec.message());
        respond_error(400, "bad request");
    } else {
        // The client closed, reset, or went quiet past the deadline.
        close();
    }
}

void Connection::handle_request() {
    disarm_deadline();
    phase_ = Phase::Handling;
    keep_alive_ = parser_->keep_alive() && server_.accepting();
    ci::log::trace("HTTP {}: {} \"{}\"",
                   remote_address_,
                   ci::log::field(request_.method, 32),
                   ci::log::field(request_.target));
    auto state = std::make_shared<Reply::State>(server_.shared_from_this(), weak_from_this());
    try {
        server_.handler()(request_, Reply(std::move(state)));
    } catch (const std::exception& error) {
        ci::log::error("HTTP handler for {} \"{}\" threw: {}",
                       ci::log::field(request_.method, 32),
                       ci::log::field(request_.path),
                       error.what());
    } catch (...) {
        ci::log::error("HTTP handler for {} \"{}\" threw",
                       ci::log::field(request_.method, 32),
                       ci::log::field(request_.path));
    }
}

void Connection::respond_error(int status, std::string_view message, bool retry_later) {
    phase_ = Phase::Handling;
    keep_alive_ = false;
    http10_ = false;
    head_request_ = false;
    disarm_deadline();
    ServerResponse response;
    response.status = status;
    response.body = fmt::format(R"({{"error":"{}"}})", message);
    if (retry_later) {
        response.headers.emplace_back("Retry-After", retry_after_seconds);
    }
    answer(std::move(response));
}

void Connection::append_status_line(int status) {
    fmt::format_to(std::back_inserter(head_),
                   "HTTP/1.1 {} {}\r\nServer: libci\r\n",
                   status,
                   reason_phrase(status));
    append_date_field(head_);
}

void Connection::append_connection_field() {
    if (!keep_alive_) {
        head_ += "Connection: close\r\n";
    } else if (http10_) {
        head_ += "Connection: keep-alive\r\n";
    }
}

void Connection::append_extra_fields(const Fields& fields) {
    for (const auto& [name, value] : fields) {
        if (!is_safe_field_name(name) || !is_safe_field_text(value)) {
            ci::log::warn("HTTP response field \"{}\" dropped: its name or value holds CR or LF",
                          ci::log::field(name));
            continue;
        }
        if (is_server_field(name)) {
            continue;
        }
        head_.append(name).append(": ").append(value).append(crlf);
    }
    for (const auto& [name, value] : server_.options().default_headers) {
        const bool overridden = std::ranges::any_of(
            fields, [&name](const auto& field) { return ascii_iequals(field.first, name); });
        if (!overridden && is_safe_field_name(name) && is_safe_field_text(value) &&
            !is_server_field(name)) {
            head_.append(name).append(": ").append(value).append(crlf);
        }
    }
}

void Connection::answer(ServerResponse response) {
    if (closed_ || phase_ != Phase::Handling) {
        return;
    }
    int status = response.status;
    if (status < 200 || status > 599) {
        ci::log::warn("HTTP handler for \"{}\" answered status {}; sending 500",
                      ci::log::field(request_.path),
                      status);
        status = 500;
    }
    const bool body_allowed = status != 204 && status != 304;
    // Answered after stop_accepting(): this is the connection's last response.
    keep_alive_ = keep_alive_ && server_.accepting();
    head_.clear();
    append_status_line(status);
    if (!response.content_type.empty() && is_safe_field_text(response.content_type)) {
        head_.append("Content-Type: ").append(response.content_type).append(crlf);
    }
    if (body_allowed) {
        fmt::format_to(std::back_inserter(head_), "Content-Length: {}\r\n", response.body.size());
    }
    append_connection_field();
    append_extra_fields(response.headers);
    head_.append(crlf);
    body_ = std::move(response.body);
    const bool send_body = body_allowed && !head_request_ && !body_.empty();
    phase_ = Phase::Writing;
    arm_deadline(server_.options().idle_timeout);
    const std::array<net::const_buffer, 2> buffers = {
        net::buffer(head_), send_body ? net::buffer(body_) : net::const_buffer()};
    net::async_write(socket_, buffers, [self = shared_from_this()](error_code ec, std::size_t) {
        self->on_response_written(ec);
    });
}

void Connection::on_response_written(error_code ec) {
    if (closed_) {
        return;
    }
    body_ = std::string();
    if (ec) {
        close();
    } else if (keep_alive_) {
        read_request();
    } else {
        graceful_close();
    }
}

void Connection::start_stream(int status,
                              const std::string& content_type,
                              const Fields& fields,
                              std::shared_ptr<StreamChannel> channel) {
    if (closed_ || phase_ != Phase::Handling) {
        channel->closed = true;
        return;
    }
    if (status < 200 || status > 599 || status == 204 || status == 304) {
        ci::log::warn("HTTP handler for \"{}\" streams status {}; sending 500",
                      ci::log::field(request_.path),
                      status);
        status = 500;
    }
    // No chunked encoding in HTTP/1.0: the body ends when the connection does (unless its
    // length is known).
    keep_alive_ = keep_alive_ && (!http10_ || channel->length) && server_.accepting();
    sized_stream_ = channel->length.has_value();
    head_.clear();
    append_status_line(status);
    if (!content_type.empty() && is_safe_field_text(content_type)) {
        head_.append("Content-Type: ").append(content_type).append(crlf);
    }
    if (channel->length) {
        head_ += fmt::format("Content-Length: {}\r\n", *channel->length);
    } else if (!http10_) {
        head_ += "Transfer-Encoding: chunked\r\n";
    }
    append_connection_field();
    append_extra_fields(fields);
    head_.append(crlf);
    if (head_request_) {
        // Nobody will read this body: tell the producer at once.
        channel->closed = true;
    }
    stream_channel_ = std::move(channel);
    stream_head_pending_ = true;
    phase_ = Phase::Streaming;
    // Reading while streaming is how a client's disconnect is noticed between writes.
    if (!background_read_pending_ && buffer_.size() < max_read_ahead) {
        read_in_background();
    }
    pump_stream();
}

void Connection::pump_stream() {
    if (closed_ || phase_ != Phase::Streaming || stream_writing_) {
        return;
    }
    bool finish = false;
    bool abandoned = false;
    {
        std::lock_guard lock(stream_channel_->mutex);
        stream_batch_.swap(stream_channel_->pending);
        stream_channel_->wake_posted = false;
        finish = stream_channel_->finish_requested;
        abandoned = stream_channel_->abandoned;
    }
    if (head_request_) {
        stream_batch_.clear();
        finish = true;
    }
    stream_buffers_.clear();
    if (stream_head_pending_) {
        stream_buffers_.emplace_back(net::buffer(head_));
    }
    if (http10_ || sized_stream_) {
        for (const auto& data : stream_batch_) {
            stream_buffers_.emplace_back(net::buffer(data));
        }
        if (finish && sized_stream_ && !head_request_) {
            std::lock_guard lock(stream_channel_->mutex);
            if (stream_channel_->accepted != stream_channel_->length) {
                // Short of its Content-Length: only closing the connection tells the client.
                finish = false;
                abandoned = true;
            }
        }
    } else {
        // Reserved first: the buffers point into chunk_sizes_, which must not move. A size line
        // is at most 16 hex digits and CRLF.
        chunk_sizes_.clear();
        chunk_sizes_.reserve(stream_batch_.size() * 18);
        for (const auto& data : stream_batch_) {
            const auto start = chunk_sizes_.size();
            fmt::format_to(std::back_inserter(chunk_sizes_), "{:x}\r\n", data.size());
            stream_buffers_.emplace_back(
                net::buffer(chunk_sizes_.data() + start, chunk_sizes_.size() - start));
            stream_buffers_.push_back(net::buffer(data));
            stream_buffers_.push_back(net::buffer(crlf.data(), crlf.size()));
        }
        if (finish && !head_request_) {
            stream_buffers_.push_back(net::buffer(last_chunk.data(), last_chunk.size()));
        }
    }
    if (stream_buffers_.empty()) {
        if (finish || abandoned) {
            end_stream(finish);
        }
        return;
    }
    stream_writing_ = true;
    stream_finishing_ = finish;
    stream_abandoning_ = abandoned && !finish;
    arm_deadline(server_.options().idle_timeout);
    net::async_write(
        socket_, stream_buffers_, [self = shared_from_this()](error_code ec, std::size_t) {
            self->on_stream_written(ec);
        });
}

void Connection::on_stream_written(error_code ec) {
    stream_writing_ = false;
    if (closed_) {
        return;
    }
    if (ec) {
        close(); // marks the stream closed: the client is gone
        return;
    }
    disarm_deadline();
    stream_head_pending_ = false;
    std::size_t sent = 0;
    for (const auto& data : stream_batch_) {
        sent += data.size();
    }
    stream_batch_.clear();
    std::function<void()> drained;
    {
        std::lock_guard lock(stream_channel_->mutex);
        stream_channel_->queued -= std::min(sent, stream_channel_->queued);
        drained = stream_channel_->take_due_callback();
    }
    if (stream_finishing_) {
        end_stream(true);
    } else if (stream_abandoning_) {
        end_stream(false);
    } else {
        if (drained) {
            drained(); // may write (and start the next write itself)
        }
        if (!closed_) {
            pump_stream();
        }
        return;
    }
    if (drained) {
        drained(); // the stream is over: lets the producer let go
    }
}

void Connection::end_stream(bool complete) {
    stream_channel_.reset();
    stream_batch_.clear();
    if (!complete) {
        // The producer dropped the stream: a terminating chunk would claim the body is whole.
        close();
    } else if (!keep_alive_) {
        graceful_close();
    } else if (background_read_pending_) {
        phase_ = Phase::AwaitingRequest;
        arm_deadline(server_.options().idle_timeout);
        if (buffer_.size() > 0) {
            // The next request (pipelined, as apt sends them) arrived during the stream: parse
            // it now rather than when more bytes come, which a waiting client never sends.
            resume_after_cancel_ = true;
            error_code ignored;
            socket_.cancel(ignored);
        }
    } else {
        read_request();
    }
}

void Connection::read_in_background() {
    background_read_pending_ = true;
    socket_.async_read_some(buffer_.prepare(background_read_size),
                            [self = shared_from_this()](error_code ec, std::size_t bytes) {
                                self->on_background_read(ec, bytes);
                            });
}

void Connection::on_background_read(error_code ec, std::size_t bytes) {
    background_read_pending_ = false;
    const bool resume = std::exchange(resume_after_cancel_, false);
    if (closed_) {
        return;
    }
    if (resume && ec == net::error::operation_aborted && phase_ == Phase::AwaitingRequest) {
        read_request(); // cancelled by end_stream: a request waits in the buffer
        return;
    }
    if (ec) {
        close(); // end of input or an error: the client is gone (or has finished, when Closing)
        return;
    }
    if (phase_ == Phase::Closing) {
        read_in_background(); // discarded: never committed
        return;
    }
    buffer_.commit(bytes);
    if (phase_ == Phase::Streaming) {
        if (buffer_.size() < max_read_ahead) {
            read_in_background();
        }
    } else if (phase_ == Phase::AwaitingRequest) {
        read_request();
    }
}

void Connection::graceful_close() {
    if (closed_) {
        return;
    }
    phase_ = Phase::Closing;
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.consume(buffer_.size());
    arm_deadline(std::min<SteadyClock::duration>(linger_time, server_.options().idle_timeout));
    if (!background_read_pending_) {
        read_in_background();
    }
}

void Connection::close_if_idle() {
    if (closed_) {
        return;
    }
    const bool waiting = (phase_ == Phase::Reading && parser_ && !parser_->got_some()) ||
                         phase_ == Phase::AwaitingRequest;
    if (waiting && buffer_.size() == 0) {
        close();
    }
}

void Connection::close() {
    if (closed_) {
        return;
    }
    closed_ = true;
    phase_ = Phase::Closed;
    error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    body_share_.give_all();
    if (stream_channel_) {
        std::function<void()> drained;
        {
            std::lock_guard lock(stream_channel_->mutex);
            stream_channel_->closed = true;
            drained = stream_channel_->take_due_callback();
        }
        stream_channel_.reset();
        if (drained) {
            drained(); // lets the producer see closed() and let go
        }
    }
    server_.unregister(*this);
}

void Connection::arm_deadline_at(SteadyClock::time_point when) {
    deadline_ = when;
    if (!timer_waiting_ || deadline_ < timer_.expiry()) {
        wait_for_deadline(deadline_);
    }
}

void Connection::wait_for_deadline(SteadyClock::time_point when) {
    timer_waiting_ = true;
    timer_.expires_at(when); // cancels an earlier wait, whose handler then ignores itself
    timer_.async_wait([self = shared_from_this()](error_code ec) { self->on_deadline(ec); });
}

void Connection::on_deadline(error_code ec) {
    if (ec) {
        return; // cancelled: replaced by a newer wait, or the connection closed
    }
    timer_waiting_ = false;
    if (closed_ || deadline_ == SteadyClock::time_point::max()) {
        return;
    }
    if (SteadyClock::now() < deadline_) {
        wait_for_deadline(deadline_);
        return;
    }
    ci::log::trace("HTTP {}: connection timed out", remote_address_);
    close();
}

/// A ResponseStream feeding one connection through a StreamChannel.
class StreamHandle final : public ResponseStream {
public:
    StreamHandle(std::shared_ptr<Reply::State> reply, std::shared_ptr<StreamChannel> channel)
        : reply_(std::move(reply)), channel_(std::move(channel)) {}

    StreamHandle(const StreamHandle&) = delete;
    StreamHandle& operator=(const StreamHandle&) = delete;

    ~StreamHandle() override;

    bool write(std::string data) override;
    void finish() override;
    [[nodiscard]] bool closed() const override;
    bool when_drained(std::size_t low_water, std::function<void()> ready) override;

private:
    void wake_connection();

    std::shared_ptr<Reply::State> reply_;
    std::shared_ptr<StreamChannel> channel_;
};

} // namespace detail

/// What a Reply and its copies share: which connection to answer on, and whether it was.
struct Reply::State {
    State(std::shared_ptr<Server::Impl> server_impl, std::weak_ptr<detail::Connection> target)
        : server(std::move(server_impl)), connection(std::move(target)) {}

    State(const State&) = delete;
    State& operator=(const State&) = delete;

    ~State() {
        if (!answered.exchange(true)) {
            ServerResponse response;
            response.status = 500;
            response.body = R"({"error":"the request was not answered"})";
            run_on_connection([response = std::move(response)](detail::Connection& c) mutable {
                c.answer(std::move(response));
            });
        }
    }

    /// Runs `action` on the connection's executor: at once when already there, else posted.
    /// False when the connection or the server is gone.
    template <class Action> bool run_on_connection(Action action) {
        if (!server || server->stopped()) {
            return false;
        }
        auto target = connection.lock();
        if (!target) {
            return false;
        }
        auto executor = target->executor();
        net::dispatch(executor, [target = std::move(target), action = std::move(action)]() mutable {
            action(*target);
        });
        return true;
    }

    std::shared_ptr<Server::Impl> server; ///< keeps the (possibly stopped) io_context alive
    std::weak_ptr<detail::Connection> connection;
    std::atomic<bool> answered{false};
};

namespace detail {

StreamHandle::~StreamHandle() {
    bool wake = false;
    {
        std::lock_guard lock(channel_->mutex);
        if (!channel_->finish_requested) {
            channel_->abandoned = true;
            wake = !std::exchange(channel_->wake_posted, true);
        }
    }
    if (wake) {
        wake_connection();
    }
}

bool StreamHandle::write(std::string data) {
    bool wake = false;
    {
        std::lock_guard lock(channel_->mutex);
        if (channel_->finish_requested || channel_->closed || !reply_->server ||
            reply_->server->stopped()) {
            return false;
        }
        if (channel_->length) {
            const auto room = *channel_->length - channel_->accepted;
            if (data.size() > room) {
                data.resize(room); // beyond the Content-Length: dropped
            }
            channel_->accepted += data.size();
        }
        if (data.empty()) {
            return true;
        }
        channel_->queued += data.size();
        channel_->pending.push_back(std::move(data));
        wake = !std::exchange(channel_->wake_posted, true);
    }
    if (wake) {
        wake_connection();
    }
    return true;
}

void StreamHandle::finish() {
    bool wake = false;
    {
        std::lock_guard lock(channel_->mutex);
        if (channel_->finish_requested) {
            return;
        }
        channel_->finish_requested = true;
        wake = !std::exchange(channel_->wake_posted, true);
    }
    if (wake) {
        wake_connection();
    }
}

bool StreamHandle::closed() const {
    return channel_->closed.load() || !reply_->server || reply_->server->stopped();
}

bool StreamHandle::when_drained(std::size_t low_water, std::function<void()> ready) {
    std::lock_guard lock(channel_->mutex);
    if (channel_->closed || channel_->queued <= low_water) {
        channel_->on_drained = nullptr;
        return false;
    }
    channel_->drained_below = low_water;
    channel_->on_drained = std::move(ready);
    return true;
}

void StreamHandle::wake_connection() {
    if (!reply_->run_on_connection([](Connection& c) { c.pump_stream(); })) {
        channel_->closed = true;
    }
}

} // namespace detail

std::string_view ServerRequest::header(std::string_view name) const {
    for (const auto& [field_name, value] : headers) {
        if (ascii_iequals(field_name, name)) {
            return value;
        }
    }
    return {};
}

Reply::Reply(std::shared_ptr<State> state) : state_(std::move(state)) {}

void Reply::defer(std::function<void()> action) {
    if (state_ && state_->server && !state_->server->stopped()) {
        state_->server->defer(std::move(action));
    }
}

bool Reply::answered() const {
    return state_ && state_->answered.load();
}

void Reply::send(ServerResponse response) {
    if (!state_ || state_->answered.exchange(true)) {
        ci::log::warn("HTTP reply answered twice: the second answer is dropped");
        return;
    }
    state_->run_on_connection([response = std::move(response)](detail::Connection& c) mutable {
        c.answer(std::move(response));
    });
}

std::shared_ptr<ResponseStream>
Reply::stream(int status, std::string content_type, Fields headers) {
    return start_stream(status, std::move(content_type), std::nullopt, std::move(headers));
}

std::shared_ptr<ResponseStream>
Reply::stream_sized(int status, std::string content_type, std::uint64_t length, Fields headers) {
    return start_stream(status, std::move(content_type), length, std::move(headers));
}

std::shared_ptr<ResponseStream> Reply::start_stream(int status,
                                                    std::string content_type,
                                                    std::optional<std::uint64_t> length,
                                                    Fields headers) {
    auto channel = std::make_shared<detail::StreamChannel>();
    channel->length = length;
    if (!state_ || state_->answered.exchange(true)) {
        ci::log::warn("HTTP reply answered twice: the second answer (a stream) is dropped");
        channel->finish_requested = true;
        channel->closed = true;
        auto state = state_;
        if (!state) {
            state = std::make_shared<State>(nullptr, std::weak_ptr<detail::Connection>());
            state->answered = true;
        }
        return std::make_shared<detail::StreamHandle>(std::move(state), std::move(channel));
    }
    auto handle = std::make_shared<detail::StreamHandle>(state_, channel);
    const bool delivered = state_->run_on_connection(
        [status, content_type = std::move(content_type), headers = std::move(headers), channel](
            detail::Connection& c) mutable {
            c.start_stream(status, content_type, headers, std::move(channel));
        });
    if (!delivered) {
        channel->closed = true;
    }
    return handle;
}

Server::Impl::Impl(ServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)),
      body_budget_(options_.max_body_memory), io_(static_cast<int>(std::max(1U, options_.threads))),
      work_(net::make_work_guard(io_)), acceptor_(io_), accept_retry_timer_(io_) {}

Status Server::Impl::listen() {
    error_code ec;
    const auto address = net::ip::make_address(options_.address, ec);
    if (ec) {
        return fail(ErrorCode::InvalidArgument,
                    describe_listen(options_.address, options_.port) + ": not an IP address");
    }
    const tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) {
        acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    }
    if (!ec) {
        acceptor_.bind(endpoint, ec);
    }
    if (!ec) {
        acceptor_.listen(net::socket_base::max_listen_connections, ec);
    }
    if (!ec) {
        port_ = acceptor_.local_endpoint(ec).port();
    }
    if (ec) {
        return fail(
            ErrorCode::Io,
            fmt::format("{}: {}", describe_listen(options_.address, options_.port), ec.message()),
            ec.value());
    }
    std::lock_guard lock(acceptor_mutex_);
    accept_next();
    return {};
}

void Server::Impl::start_threads() {
    const unsigned count = std::max(1U, options_.threads);
    threads_.reserve(count);
    for (unsigned i = 0; i < count; ++i) {
        threads_.emplace_back([this] {
            for (;;) {
                try {
                    io_.run();
                    return;
                } catch (const std::exception& error) {
                    ci::log::error("HTTP server on port {}: {}", port_, error.what());
                }
            }
        });
    }
}

net::any_io_executor Server::Impl::connection_executor() {
    if (options_.threads > 1) {
        return net::make_strand(io_);
    }
    return io_.get_executor();
}

void Server::Impl::accept_next() {
    acceptor_.async_accept(connection_executor(), [this](error_code ec, tcp::socket socket) {
        on_accept(ec, std::move(socket));
    });
}

void Server::Impl::on_accept(error_code ec, tcp::socket socket) {
    std::lock_guard lock(acceptor_mutex_);
    if (!accepting_ || stopped_) {
        return;
    }
    if (ec) {
        if (ec == net::error::operation_aborted) {
            return;
        }
        ci::log::warn("HTTP server on port {}: accept: {}", port_, ec.message());
        // Out of descriptors lasts until a connection closes: wait rather than spin.
        accept_retry_timer_.expires_after(100ms);
        accept_retry_timer_.async_wait([this](error_code wait_error) {
            std::lock_guard retry_lock(acceptor_mutex_);
            if (!wait_error && accepting_) {
                accept_next();
            }
        });
        return;
    }
    accept_next();
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    const auto peer = peer_ip(socket);
    auto key = address_key(peer);
    std::shared_ptr<detail::Connection> connection;
    {
        std::lock_guard registry_lock(connections_mutex_);
        auto& from_address = per_address_[key];
        if (connections_.size() >= options_.max_connections ||
            from_address >= options_.max_connections_per_address) {
            const auto total = connections_.size();
            const auto mine = from_address;
            if (mine == 0) {
                per_address_.erase(key);
            }
            if (const auto count = connection_refusals_.count(); count > 0) {
                ci::log::warn("HTTP server on port {}: {} connection(s) refused over the limits "
                              "(the last from {}, which had {} open of {} per address; {} open "
                              "of {} in all)",
                              port_,
                              count,
                              peer.to_string(),
                              mine,
                              options_.max_connections_per_address,
                              total,
                              options_.max_connections);
            }
            // A short answer the client can read (its send buffer is empty: this cannot
            // block long), then the end; nothing of the request is read.
            net::write(socket, net::buffer(connection_refusal), ignored);
            socket.shutdown(tcp::socket::shutdown_both, ignored);
            socket.close(ignored);
            return;
        }
        ++from_address;
        connection = std::make_shared<detail::Connection>(*this, std::move(socket), key);
        connections_.push_front(connection);
        connection->registry_position_ = connections_.begin();
        connection->registered_ = true;
    }
    // Registered under acceptor_mutex_: a stop_accepting() that follows sees it and closes it.
    auto executor = connection->executor();
    net::post(executor, [connection = std::move(connection)] { connection->start(); });
}

void Server::Impl::unregister(detail::Connection& connection) {
    std::lock_guard lock(connections_mutex_);
    if (connection.registered_) {
        connection.registered_ = false;
        connections_.erase(connection.registry_position_);
        if (const auto found = per_address_.find(connection.address_key_);
            found != per_address_.end() && --found->second == 0) {
            per_address_.erase(found);
        }
    }
}

void Server::Impl::log_refusal(std::string_view what, const std::string& address) {
    if (const auto count = body_refusals_.count(); count > 0) {
        ci::log::warn("HTTP server on port {}: {} request(s) refused with 503: {} would pass the "
                      "memory for bodies ({} bytes; the last from {})",
                      port_,
                      count,
                      what,
                      options_.max_body_memory,
                      address);
    }
}

std::size_t Server::Impl::connection_count() const {
    std::lock_guard lock(connections_mutex_);
    return connections_.size();
}

void Server::Impl::stop_accepting() {
    {
        std::lock_guard lock(acceptor_mutex_);
        if (!accepting_.exchange(false)) {
            return;
        }
        error_code ignored;
        acceptor_.close(ignored);
        accept_retry_timer_.cancel();
    }
    std::lock_guard lock(connections_mutex_);
    for (const auto& connection : connections_) {
        net::post(connection->executor(), [connection] { connection->close_if_idle(); });
    }
}

void Server::Impl::stop() {
    stopped_ = true;
    {
        std::lock_guard lock(acceptor_mutex_);
        accepting_ = false;
        error_code ignored;
        acceptor_.close(ignored);
        accept_retry_timer_.cancel();
    }
    work_.reset();
    io_.stop();
    for (auto& thread : threads_) {
        thread.join();
    }
    threads_.clear();
    // No thread runs the io_context now: closing the connections from here is safe. Handlers
    // still queued in it are destroyed, never run, when the io_context is.
    std::list<std::shared_ptr<detail::Connection>> open;
    {
        std::lock_guard lock(connections_mutex_);
        open.swap(connections_);
        for (const auto& connection : open) {
            connection->registered_ = false;
        }
    }
    for (const auto& connection : open) {
        connection->close();
    }
    open.clear();
    // What the handler captured goes now, not when the last Reply does.
    Handler().swap(handler_);
}

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, Handler handler) {
    if (!handler) {
        return fail(ErrorCode::InvalidArgument,
                    describe_listen(options.address, options.port) + ": no handler");
    }
    auto impl = std::make_shared<Impl>(std::move(options), std::move(handler));
    if (auto listening = impl->listen(); !listening) {
        return fail(std::move(listening.error()));
    }
    impl->start_threads();
    return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
    impl_->stop();
}

std::uint16_t Server::port() const {
    return impl_->port();
}

void Server::stop_accepting() {
    impl_->stop_accepting();
}

std::size_t Server::connections() const {
    return impl_->connection_count();
}

} // namespace ci::http
