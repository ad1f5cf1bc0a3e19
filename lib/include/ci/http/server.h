#pragma once

/// \file
/// An asynchronous HTTP/1.1 server: the master's REST API, its webhook receiver and its live
/// build logs. Each request goes to one Handler, which answers through a Reply now or later,
/// from any thread, with a whole response or a chunked stream. Connections are kept alive
/// between requests (HTTP/1.1, and HTTP/1.0 with "Connection: keep-alive").
///
/// The implementation over Boost.Beast lives in lib/src/http; nothing here names Boost.
///
/// Threads: the server runs ServerOptions::threads I/O threads of its own. A Handler runs on one
/// of them; Reply, ResponseStream and the Server's members may be used from any thread.
///
/// Lifetimes: ~Server stops everything (listener, connections, threads) before it returns. A
/// Reply or ResponseStream that outlives its Server stays safe to use: its answers and writes
/// are dropped (ResponseStream::closed() is true). They keep only a small, idle part of the
/// server in memory until the last of them is gone.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ci/core/error.h>

namespace ci::http {

namespace detail {
class Connection;
} // namespace detail

/// One request as the server received it. A Handler gets it by reference, valid during the call
/// only: move out what must live longer (the server reuses the object's storage).
struct ServerRequest {
    std::string method; ///< "GET", "POST", ... as sent
    std::string target; ///< as sent: "/api/v1/builds?limit=5"
    std::string path;   ///< the target's path, percent-decoded: "/api/v1/builds"
    /// Decoded query parameters: "%XX" and '+' (a space) decoded in names and values; a name
    /// without '=' has the value ""; when a name repeats, the last one wins.
    std::map<std::string, std::string> query;
    /// Header fields in the order received; names lower-cased, values as sent (trimmed).
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;           ///< decoded from chunked transfer encoding when sent so
    std::string remote_address; ///< the peer's IP address: "127.0.0.1", "::1"

    /// The first header named `name` (case-insensitive), or "" when absent.
    [[nodiscard]] std::string_view header(std::string_view name) const;
};

/// A complete response.
struct ServerResponse {
    int status = 200; ///< 200..599; anything else is sent as 500
    /// Sent as Content-Type unless empty.
    std::string content_type = "application/json";
    /// Extra header fields. The server writes Server, Date, Content-Length, Transfer-Encoding and
    /// Connection itself and ignores those names here; a field whose name or value holds CR or LF
    /// is dropped.
    std::vector<std::pair<std::string, std::string>> headers;
    /// Not sent for HEAD requests and for 204 and 304 (Content-Length still says its size for
    /// HEAD).
    std::string body;
};

/// A response body sent as it is produced (HTTP/1.1 chunked transfer encoding): a build log
/// that `curl` follows, Server-Sent Events. All members are thread-safe. For an HTTP/1.0 client
/// the body is sent as is and ends when the server closes the connection.
///
/// A stream destroyed without finish() closes its connection after what was written (the client
/// sees a truncated body rather than a complete one).
class ResponseStream {
public:
    virtual ~ResponseStream() = default;
    /// Queues `data` as one chunk (empty data is ignored). Writes reach the client in the order
    /// they were queued. False once the client is gone, the server stopped or finish() was called.
    virtual bool write(std::string data) = 0;
    /// Ends the body (the terminating zero chunk) after every queued write; the connection may
    /// then serve the next request. Later calls do nothing.
    virtual void finish() = 0;
    /// True once the client disconnected (or the server stopped).
    [[nodiscard]] virtual bool closed() const = 0;
    /// Flow control for a producer that could write faster than the client reads (a file):
    /// when more than `low_water` bytes are queued and not yet written, keeps `ready` and
    /// returns true; `ready` then runs once, on a server thread, as soon as they are at most
    /// `low_water`, or when the stream closes (check closed() in it). Returns false, without
    /// keeping `ready`, when they already are at most `low_water` or the stream is closed: the
    /// producer goes on writing. A second call replaces an earlier, not yet run `ready`.
    virtual bool when_drained(std::size_t low_water, std::function<void()> ready) = 0;
};

/// How a handler answers: exactly one of send() or stream(), once, from any thread, now or later
/// (a handler may keep the Reply and answer when a background job finishes). A Reply destroyed
/// without an answer sends 500. Copyable handle (shared state); moving it is cheap.
///
/// The connection reads its next request only after this answer was written, so a handler that
/// never answers holds its connection (but not the server's thread) until the last copy of the
/// Reply is gone.
class Reply {
public:
    /// Sends `response`. A second answer (send() or stream() after either) is ignored. An answer
    /// to a client that has gone, or after the server stopped, is dropped.
    void send(ServerResponse response);

    /// Starts a chunked response with these headers; the body follows through the stream. After
    /// an earlier answer, returns a stream that is closed() and accepts no writes. `headers` are
    /// filtered as ServerResponse::headers are.
    std::shared_ptr<ResponseStream>
    stream(int status,
           std::string content_type,
           std::vector<std::pair<std::string, std::string>> headers = {});

    /// As stream(), for a body whose size is known (a file): sent with `Content-Length:
    /// length` rather than chunked, so clients can tell a whole body from a cut one and the
    /// connection stays open for the next request (HTTP/1.0 too). The writes must add up to
    /// exactly `length` bytes: bytes beyond it are dropped, and a stream finished short of it
    /// closes the connection (the client sees a truncated body). For HEAD only the header is
    /// sent (the stream is closed() at once).
    std::shared_ptr<ResponseStream>
    stream_sized(int status,
                 std::string content_type,
                 std::uint64_t length,
                 std::vector<std::pair<std::string, std::string>> headers = {});

    /// True once send() or stream() was called on this Reply or one of its copies.
    [[nodiscard]] bool answered() const;

    /// Runs `action` on a server thread after the handlers that are ready now: those of the
    /// requests that arrived together with this one (the I/O the server thread has already
    /// seen). A handler that collects work from many requests and does it once per round (a
    /// group commit, answering each request from `action`) calls this on the first request of a
    /// round. Not tied to this Reply's connection, and callable after the answer. Dropped
    /// without running when the server stops first.
    void defer(std::function<void()> action);

    /// The shared state of a Reply and its copies (defined by the server).
    struct State;

private:
    friend class detail::Connection;
    explicit Reply(std::shared_ptr<State> state);
    std::shared_ptr<ResponseStream>
    start_stream(int status,
                 std::string content_type,
                 std::optional<std::uint64_t> length,
                 std::vector<std::pair<std::string, std::string>> headers);

    std::shared_ptr<State> state_;
};

/// Called on a server thread for each request. Must not block for long (it would hold up the
/// other connections of that thread): hand slow work to another thread and answer later. An
/// exception escaping it is logged; an unanswered Reply then sends 500.
using Handler = std::function<void(ServerRequest& request, Reply reply)>;

/// Called on a server thread once a request's header has arrived, before its body is read:
/// `request` has everything but the body. Returns an answer to refuse the request without
/// reading its body (a wrong password, a body too large for its route), or nullopt to read the
/// body and hand the request to the Handler. May lower `max_body` (which starts at
/// ServerOptions::max_body) for this request: a larger body then gets 413. Must be quick and
/// must not block. The connection closes after a refusal when a body was left unread.
using HeaderCheck = std::function<std::optional<ServerResponse>(const ServerRequest& request,
                                                                std::size_t& max_body)>;

/// Settings of a server, fixed for its lifetime.
struct ServerOptions {
    std::string address = "127.0.0.1"; ///< where to listen ("0.0.0.0" for every interface)
    std::uint16_t port = 0;            ///< 0: a free port (see Server::port())
    /// Larger bodies get 413 and never reach the handler (a HeaderCheck may lower it per request).
    std::size_t max_body = std::size_t{25} * 1024 * 1024;
    /// Request header size (request line and fields); larger ones get 431.
    std::size_t max_header = std::size_t{16} * 1024;
    /// The bytes the bodies of all requests being read or handled may hold together. A request
    /// whose body would pass it gets 503 with `Retry-After`, before its body is read when it
    /// says its length (Content-Length), else when its chunks pass it.
    std::size_t max_body_memory = std::size_t{64} * 1024 * 1024;
    /// Connections open at once, in all and from one address (an IPv6 address counts its /64):
    /// a connection beyond either gets 503 with `Retry-After` and is closed before anything is
    /// read from it.
    std::size_t max_connections = 1024;
    std::size_t max_connections_per_address = 128;
    /// A keep-alive connection idle this long is closed (also the wait for a new connection's
    /// first byte, and the longest a response may take to be written).
    std::chrono::seconds idle_timeout{75};
    /// From a request's first byte: the longest its header may take to arrive, and the longest
    /// the whole request (header and body) may take. A slower request is dropped (slowloris).
    std::chrono::seconds header_timeout{10};
    std::chrono::seconds request_timeout{60};
    /// See HeaderCheck; empty: every request is read whole and handled.
    HeaderCheck check_header;
    /// Fields every answer carries (security headers: `X-Content-Type-Options`, a
    /// `Content-Security-Policy`), streams and the server's own error answers (400, 413, 431,
    /// 501, 503) included, unless the answer sets a field of the same name (case-insensitive).
    /// Filtered as ServerResponse::headers are.
    std::vector<std::pair<std::string, std::string>> default_headers;
    /// The client's address for ServerRequest::remote_address, from the peer's address and the
    /// request's header (the master's trusted proxies: X-Forwarded-For); empty: the peer's.
    /// Called on a server thread before check_header; must be quick. The connection limits
    /// count the peer's address.
    std::function<std::string(const std::string& peer, const ServerRequest& request)>
        client_address;
    unsigned threads = 1; ///< I/O threads (0 counts as 1)
};

/// A listening HTTP server. Not copyable or movable; use it through the unique_ptr start() gives.
class Server {
public:
    /// Binds and starts serving on its own threads. Fails with InvalidArgument for an address
    /// that is not an IP address or an empty handler, and with Io (native: errno) when the socket
    /// cannot listen, naming the address and port ("listen on 127.0.0.1:8010: Address already in
    /// use").
    [[nodiscard]] static Result<std::unique_ptr<Server>> start(ServerOptions options,
                                                               Handler handler);

    /// Stops: closes the listener and every connection, joins the threads, and destroys the
    /// handler. Must not be called from a handler (a server thread would join itself).
    ~Server();

    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// The port listened on (the one the kernel chose when ServerOptions::port was 0).
    [[nodiscard]] std::uint16_t port() const;

    /// Stops accepting new connections: once this returns, connecting fails. Requests in
    /// progress still get their answers (then their connections close), streams go on until
    /// they finish, and idle keep-alive connections are closed.
    void stop_accepting();

    /// Connections open now (for tests and /metrics), counting one that sent its last response
    /// and waits (up to 2 s) for its client to close.
    [[nodiscard]] std::size_t connections() const;

    /// The server's state (defined by the implementation).
    class Impl;

private:
    explicit Server(std::shared_ptr<Impl> impl);

    // Shared with every Reply and ResponseStream, which keep the stopped I/O context alive (never
    // its threads or connections) so that using them after ~Server is safe.
    std::shared_ptr<Impl> impl_;
};

} // namespace ci::http
