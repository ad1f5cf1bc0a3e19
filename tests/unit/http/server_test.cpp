// The Beast HTTP server against real clients on 127.0.0.1: libcurl (through ci::http::Client)
// where a well-behaved client is wanted, a raw socket where the bytes on the wire, the
// connection they travel on, or a misbehaving client matter.

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ci/http/client.h>
#include <ci/http/server.h>

#include "core/ascii.h"
#include "support/require_ok.h"

namespace {

using namespace std::chrono_literals;
using ci::http::Reply;
using ci::http::ResponseStream;
using ci::http::Server;
using ci::http::ServerOptions;
using ci::http::ServerRequest;
using ci::http::ServerResponse;

constexpr auto patience = 5s;

std::unique_ptr<Server> start_server(ci::http::Handler handler, ServerOptions options = {}) {
    auto server = Server::start(std::move(options), std::move(handler));
    REQUIRE_OK(server);
    return std::move(*server);
}

ServerResponse text_response(std::string body, int status = 200) {
    ServerResponse response;
    response.status = status;
    response.content_type = "text/plain";
    response.body = std::move(body);
    return response;
}

/// Polls `condition` until it holds or `patience` passes.
template <class Condition> bool eventually(Condition condition) {
    const auto deadline = std::chrono::steady_clock::now() + patience;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

/// A value one thread hands to another, waited for with a timeout.
template <class T> class Mailbox {
public:
    void put(T value) {
        {
            std::lock_guard lock(mutex_);
            values_.push_back(std::move(value));
        }
        ready_.notify_all();
    }
    std::optional<T> take() {
        std::unique_lock lock(mutex_);
        if (!ready_.wait_for(lock, patience, [&] { return !values_.empty(); })) {
            return std::nullopt;
        }
        T value = std::move(values_.front());
        values_.erase(values_.begin());
        return value;
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::vector<T> values_;
};

/// A response as a RawClient read it off the wire.
struct RawResponse {
    int status = 0;
    std::vector<std::pair<std::string, std::string>> headers; ///< names lower-cased
    std::string body;                                         ///< de-chunked
    int chunks = 0;                                           ///< data chunks, when chunked

    [[nodiscard]] std::optional<std::string> header(std::string_view name) const {
        for (const auto& [field, value] : headers) {
            if (field == name) {
                return value;
            }
        }
        return std::nullopt;
    }
};

/// A blocking HTTP/1.1 client on a plain socket, with a timeout on every read.
class RawClient {
public:
    explicit RawClient(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
            connect_errno_ = errno;
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~RawClient() { close(); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    [[nodiscard]] bool connected() const { return fd_ >= 0; }
    [[nodiscard]] int connect_errno() const { return connect_errno_; }

    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

    bool send(std::string_view data) const {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return false;
            }
            data.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Reads until `text` arrived (kept for later reads); false on timeout or end of input.
    bool wait_for(std::string_view text) {
        while (buffer_.find(text) == std::string::npos) {
            if (!fill()) {
                return false;
            }
        }
        return true;
    }

    /// Reads one whole response, or nullopt when the connection ends or times out first.
    /// `head`: the response to a HEAD request, which has no body whatever its fields say.
    std::optional<RawResponse> read_response(bool head = false) {
        if (!wait_for("\r\n\r\n")) {
            return std::nullopt;
        }
        const auto header_end = buffer_.find("\r\n\r\n");
        const std::string header = buffer_.substr(0, header_end);
        buffer_.erase(0, header_end + 4);
        RawResponse response;
        std::size_t line_end = header.find("\r\n");
        const std::string status_line = header.substr(0, line_end);
        if (status_line.size() < 12 || status_line.compare(0, 5, "HTTP/") != 0) {
            return std::nullopt;
        }
        response.status = std::stoi(status_line.substr(9, 3));
        while (line_end != std::string::npos) {
            const auto start = line_end + 2;
            line_end = header.find("\r\n", start);
            const auto line = header.substr(start, line_end - start);
            const auto colon = line.find(':');
            std::string name = ci::ascii_lower(line.substr(0, colon));
            response.headers.emplace_back(name,
                                          line.substr(line.find_first_not_of(' ', colon + 1)));
        }
        if (head || response.status < 200 || response.status == 204 || response.status == 304) {
            return response;
        }
        if (response.header("transfer-encoding") == "chunked") {
            for (;;) {
                if (!wait_for("\r\n")) {
                    return std::nullopt;
                }
                const auto size_end = buffer_.find("\r\n");
                const std::size_t size = std::stoul(buffer_.substr(0, size_end), nullptr, 16);
                buffer_.erase(0, size_end + 2);
                while (buffer_.size() < size + 2) {
                    if (!fill()) {
                        return std::nullopt;
                    }
                }
                if (buffer_.compare(size, 2, "\r\n") != 0) {
                    return std::nullopt;
                }
                response.body.append(buffer_, 0, size);
                buffer_.erase(0, size + 2);
                if (size == 0) {
                    return response;
                }
                ++response.chunks;
            }
        }
        if (const auto length = response.header("content-length")) {
            const auto size = std::stoul(*length);
            while (buffer_.size() < size) {
                if (!fill()) {
                    return std::nullopt;
                }
            }
            response.body = buffer_.substr(0, size);
            buffer_.erase(0, size);
            return response;
        }
        while (fill()) {
        }
        response.body = std::exchange(buffer_, {});
        return response;
    }

    /// True when the server closes the connection (end of input or reset) within `patience`;
    /// bytes that arrive meanwhile are kept.
    bool wait_closed() {
        while (fill()) {
        }
        return closed_by_peer_;
    }

    /// Bytes received and not yet consumed by read_response().
    [[nodiscard]] const std::string& unread() const { return buffer_; }

private:
    // Reads what is available; false on end of input, error or timeout.
    bool fill() {
        pollfd poll_fd{fd_, POLLIN, 0};
        const int ready = ::poll(&poll_fd, 1, static_cast<int>(patience / 1ms));
        if (ready <= 0) {
            return false;
        }
        std::array<char, 16384> chunk; // not zero-filled: recv() writes what is used
        const ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
        if (n <= 0) {
            closed_by_peer_ = true;
            return false;
        }
        buffer_.append(chunk.data(), static_cast<std::size_t>(n));
        return true;
    }

    int fd_ = -1;
    int connect_errno_ = 0;
    bool closed_by_peer_ = false;
    std::string buffer_;
};

std::unique_ptr<ci::http::Client> make_test_client() {
    ci::http::ClientOptions options;
    options.retry.max_attempts = 1;
    options.timeout = 10s;
    return ci::http::make_client(options);
}

ci::http::Request request_to(const Server& server, std::string method, std::string path) {
    ci::http::Request request;
    request.method = std::move(method);
    request.scheme = "http";
    request.host = "127.0.0.1:" + std::to_string(server.port());
    request.path = std::move(path);
    return request;
}

} // namespace

TEST_CASE("http server: a GET arrives with its path and query decoded and its headers found") {
    Mailbox<ServerRequest> received;
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        received.put(request);
        ServerResponse response = text_response("hello", 201);
        response.headers = {{"X-Answer", "42"}};
        reply.send(std::move(response));
    });
    auto request = request_to(*server, "GET", "/api/v1/a%20b%2Fc+d");
    request.query = "limit=5&name=x%2By+z&flag&limit=7&&empty=";
    request.headers = {{"X-Token", "abc"}, {"X-Second", "two words"}};
    auto response = make_test_client()->send(request);
    REQUIRE_OK(response);

    CHECK(response->status == 201);
    CHECK(response->body == "hello");
    REQUIRE(response->header("server") != nullptr);
    CHECK(*response->header("server") == "libci");
    REQUIRE(response->header("content-length") != nullptr);
    CHECK(*response->header("content-length") == "5");
    CHECK(*response->header("content-type") == "text/plain");
    CHECK(*response->header("x-answer") == "42");
    CHECK(response->header("date") != nullptr);

    const auto seen = received.take();
    REQUIRE(seen);
    CHECK(seen->method == "GET");
    CHECK(seen->target == "/api/v1/a%20b%2Fc+d?limit=5&name=x%2By+z&flag&limit=7&&empty=");
    CHECK(seen->path == "/api/v1/a b/c+d"); // '+' is a space only in a query
    const std::map<std::string, std::string> expected_query = {
        {"limit", "7"}, {"name", "x+y z"}, {"flag", ""}, {"empty", ""}};
    CHECK(seen->query == expected_query);
    CHECK(seen->header("x-token") == "abc");
    CHECK(seen->header("X-TOKEN") == "abc");
    CHECK(seen->header("x-second") == "two words");
    CHECK(seen->header("x-missing").empty());
    CHECK(seen->remote_address == "127.0.0.1");
    std::vector<std::string> names;
    for (const auto& [name, value] : seen->headers) {
        names.push_back(name);
    }
    const auto token = std::find(names.begin(), names.end(), "x-token");
    const auto second = std::find(names.begin(), names.end(), "x-second");
    CHECK(token < second); // in the order sent
    CHECK(second != names.end());
}

TEST_CASE("http server: a POST body round-trips byte for byte, plain or chunked") {
    auto server = start_server([](ServerRequest& request, Reply reply) {
        ServerResponse response;
        response.content_type = "application/octet-stream";
        response.body = std::move(request.body);
        reply.send(std::move(response));
    });
    SUBCASE("through curl, binary and large") {
        std::string body;
        for (int i = 0; i < 300 * 1024; ++i) {
            body.push_back(static_cast<char>(i * 7 % 256));
        }
        auto request = request_to(*server, "POST", "/echo");
        request.body = body;
        auto response = make_test_client()->send(request);
        REQUIRE_OK(response);
        CHECK(response->status == 200);
        CHECK(response->body.size() == body.size());
        CHECK(response->body == body);
    }
    SUBCASE("chunked transfer encoding is decoded") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->body == "hello, world");
    }
}

TEST_CASE("http server: Expect: 100-continue is answered before the body is sent") {
    auto server = start_server([](ServerRequest& request, Reply reply) {
        reply.send(text_response("got " + request.body));
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                "Expect: 100-continue\r\n\r\n");
    const auto interim = client.read_response();
    REQUIRE(interim);
    CHECK(interim->status == 100);
    client.send("hello");
    const auto response = client.read_response();
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body == "got hello");
}

TEST_CASE("http server: keep-alive serves one request after another on one connection") {
    std::atomic<int> handled{0};
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        ++handled;
        reply.send(text_response(request.path));
    });
    SUBCASE("HTTP/1.1") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        for (const char* path : {"/one", "/two", "/three"}) {
            CAPTURE(path);
            client.send(std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
            const auto response = client.read_response();
            REQUIRE(response);
            CHECK(response->body == path);
            CHECK_FALSE(response->header("connection"));
            CHECK(server->connections() == 1);
        }
        client.send("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        const auto last = client.read_response();
        REQUIRE(last);
        CHECK(last->body == "/last");
        CHECK(last->header("connection") == "close");
        CHECK(client.wait_closed());
        client.close(); // the server lingers until the client closes too
        CHECK(eventually([&] { return server->connections() == 0; }));
        CHECK(handled == 4);
    }
    SUBCASE("HTTP/1.0 closes unless asked to keep alive") {
        RawClient kept(server->port());
        REQUIRE(kept.connected());
        for (int i = 0; i < 2; ++i) {
            kept.send("GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            const auto response = kept.read_response();
            REQUIRE(response);
            CHECK(response->body == "/ten");
            CHECK(response->header("connection") == "keep-alive");
            CHECK(response->header("content-length") == "4");
        }
        RawClient once(server->port());
        REQUIRE(once.connected());
        once.send("GET /once HTTP/1.0\r\n\r\n");
        const auto response = once.read_response();
        REQUIRE(response);
        CHECK(response->body == "/once");
        CHECK(response->header("content-length") == "5");
        CHECK(once.wait_closed());
    }
    SUBCASE("pipelined requests are answered in order") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto first = client.read_response();
        const auto second = client.read_response();
        REQUIRE(first);
        REQUIRE(second);
        CHECK(first->body == "/a");
        CHECK(second->body == "/b");
    }
    SUBCASE("HEAD gets the length of the body but not the body") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto head = client.read_response(true);
        REQUIRE(head);
        CHECK(head->header("content-length") == "5");
        // Had a body been sent, it would be read as the start of the next response.
        client.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto next = client.read_response();
        REQUIRE(next);
        CHECK(next->status == 200);
        CHECK(next->body == "/next");
    }
}

TEST_CASE("http server: a transfer coding other than chunked gets 501 and the connection closes") {
    // RFC 9112, 6.1: a coding the server does not know must not be read past (its body would
    // be taken for the next request: smuggling); chunked must be the last coding.
    std::atomic<int> handled{0};
    auto server = start_server([&](ServerRequest&, Reply reply) {
        ++handled;
        reply.send(text_response("ok"));
    });
    for (const char* request :
         {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"
          "GET /",
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, "
          "chunked\r\n\r\n5\r\nabcde\r\n0\r\n\r\n",
          "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: x-custom\r\n\r\n"}) {
        CAPTURE(request);
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send(request);
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 501);
        CHECK(response->header("connection") == "close");
        CHECK(response->body.find("transfer coding") != std::string::npos);
        CHECK(client.wait_closed());
    }
    // chunked not last: the body's length cannot be known (RFC 9112, 6.3): 400.
    RawClient not_last(server->port());
    REQUIRE(not_last.connected());
    not_last.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n"
                  "Content-Length: 3\r\n\r\nabc");
    const auto refused = not_last.read_response();
    REQUIRE(refused);
    CHECK(refused->status == 400);
    CHECK(not_last.wait_closed());
    CHECK(handled == 0);
    // chunked alone, in any case, and identity before it still work.
    for (const char* coding : {"chunked", "CHUNKED", "identity, chunked"}) {
        CAPTURE(coding);
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send(std::string("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ") + coding +
                    "\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 200);
    }
    CHECK(handled == 3);
}

TEST_CASE("http server: default_headers go on every answer unless the answer sets its own") {
    ServerOptions options;
    options.default_headers = {{"X-Content-Type-Options", "nosniff"},
                               {"Content-Security-Policy", "default-src 'none'"}};
    options.max_header = 1024;
    auto server = start_server(
        [](ServerRequest& request, Reply reply) {
            if (request.path == "/stream") {
                auto stream = reply.stream(200, "text/plain");
                stream->write("x");
                stream->finish();
                return;
            }
            ServerResponse response = text_response("<b>");
            if (request.path == "/own") {
                response.headers.emplace_back("content-security-policy", "script-src 'self'");
            }
            reply.send(std::move(response));
        },
        options);
    const auto fetch = [&](const std::string& request) {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send(request);
        auto response = client.read_response();
        REQUIRE(response);
        return *response;
    };
    for (const char* path : {"/", "/stream"}) {
        CAPTURE(path);
        const auto response = fetch(std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        CHECK(response.header("x-content-type-options") == "nosniff");
        CHECK(response.header("content-security-policy") == "default-src 'none'");
    }
    const auto own = fetch("GET /own HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(own.header("content-security-policy") == "script-src 'self'");
    CHECK(own.header("x-content-type-options") == "nosniff");
    const auto csp_fields =
        std::count_if(own.headers.begin(), own.headers.end(), [](const auto& f) {
            return f.first == "content-security-policy";
        });
    CHECK(csp_fields == 1);
    // The server's own error answers carry them too.
    const auto malformed = fetch("this is not http\r\n\r\n");
    CHECK(malformed.status == 400);
    CHECK(malformed.header("x-content-type-options") == "nosniff");
    const auto huge = fetch("GET / HTTP/1.1\r\nX-Huge: " + std::string(2000, 'h') + "\r\n\r\n");
    CHECK(huge.status == 431);
    CHECK(huge.header("content-security-policy") == "default-src 'none'");
}

TEST_CASE("http server: fields the server owns cannot be overridden or injected") {
    auto server = start_server([](ServerRequest&, Reply reply) {
        ServerResponse response = text_response("12345");
        response.headers = {
            {"Content-Length", "999"}, {"X-Evil", "a\r\nInjected: 1"}, {"X-Fine", "ok"}};
        reply.send(std::move(response));
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto response = client.read_response();
    REQUIRE(response);
    CHECK(response->header("content-length") == "5");
    CHECK(response->body == "12345");
    CHECK_FALSE(response->header("injected"));
    CHECK_FALSE(response->header("x-evil"));
    CHECK(response->header("x-fine") == "ok");
}

TEST_CASE("http server: a handler may answer later, from another thread") {
    Mailbox<Reply> held;
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        if (request.path == "/later") {
            held.put(std::move(reply));
        } else if (request.path == "/dropped") {
            // Destroyed unanswered: the server must answer 500 by itself.
        } else if (request.path == "/throws") {
            throw std::runtime_error("handler failed");
        } else {
            reply.send(text_response("now"));
        }
    });
    SUBCASE("answered later while the server goes on serving others") {
        auto client = make_test_client();
        ci::Result<ci::http::Response> late = ci::fail(ci::ErrorCode::Internal, "not sent");
        std::thread waiting([&] { late = client->send(request_to(*server, "GET", "/later")); });
        auto reply = held.take();
        REQUIRE(reply);
        CHECK_FALSE(reply->answered());
        // The server thread is free while /later waits: another request is served at once.
        auto now = make_test_client()->send(request_to(*server, "GET", "/now"));
        REQUIRE_OK(now);
        CHECK(now->body == "now");
        std::thread answering([reply = std::move(*reply)]() mutable {
            reply.send(text_response("finally", 202));
            CHECK(reply.answered());
        });
        answering.join();
        waiting.join();
        REQUIRE_OK(late);
        CHECK(late->status == 202);
        CHECK(late->body == "finally");
    }
    SUBCASE("an unanswered Reply sends 500") {
        auto response = make_test_client()->send(request_to(*server, "GET", "/dropped"));
        REQUIRE_OK(response);
        CHECK(response->status == 500);
    }
    SUBCASE("a handler that throws gets 500 and the server goes on") {
        auto client = make_test_client();
        auto failed = client->send(request_to(*server, "GET", "/throws"));
        REQUIRE_OK(failed);
        CHECK(failed->status == 500);
        auto after = client->send(request_to(*server, "GET", "/ok"));
        REQUIRE_OK(after);
        CHECK(after->status == 200);
    }
    SUBCASE("a second answer is ignored") {
        RawClient raw(server->port());
        REQUIRE(raw.connected());
        raw.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\n");
        auto reply = held.take();
        REQUIRE(reply);
        Reply copy = *reply;
        reply->send(text_response("first"));
        copy.send(text_response("second"));
        auto stream = copy.stream(200, "text/plain");
        CHECK(stream->closed());
        CHECK_FALSE(stream->write("third"));
        const auto response = raw.read_response();
        REQUIRE(response);
        CHECK(response->body == "first");
        raw.send("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto next = raw.read_response();
        REQUIRE(next);
        CHECK(next->body == "now"); // nothing of "second" was written in between
    }
}

TEST_CASE("http server: Reply::defer runs once after the requests that arrived together") {
    // A group commit as the master's webhook receiver does it: each request joins a batch, the
    // first of a round defers the action, and the action answers the whole batch.
    std::mutex mutex;
    std::vector<Reply> batch;
    std::vector<std::size_t> batch_sizes;
    std::atomic<bool> in_handler{false};
    std::atomic<bool> deferred_ran_inside_handler{false};
    std::promise<void> release;
    auto released = release.get_future().share();
    std::promise<void> entered;
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        if (request.path == "/block") {
            // Holds the server's only thread while the test sends the batch.
            entered.set_value();
            released.wait();
            reply.send(text_response("unblocked"));
            return;
        }
        in_handler = true;
        bool first = false;
        {
            std::lock_guard lock(mutex);
            first = batch.empty();
            batch.push_back(reply);
        }
        if (first) {
            reply.defer([&] {
                if (in_handler) {
                    deferred_ran_inside_handler = true;
                }
                std::vector<Reply> taken;
                {
                    std::lock_guard lock(mutex);
                    taken.swap(batch);
                    batch_sizes.push_back(taken.size());
                }
                for (auto& each : taken) {
                    each.send(text_response("batch of " + std::to_string(taken.size())));
                }
            });
        }
        in_handler = false;
    });
    // Three keep-alive connections, each served once (alone in its round) so that all three
    // are open and waiting for their next request.
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 3; ++i) {
        clients.push_back(std::make_unique<RawClient>(server->port()));
        REQUIRE(clients.back()->connected());
        REQUIRE(
            clients.back()->send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"));
        const auto alone = clients.back()->read_response();
        REQUIRE(alone);
        CHECK(alone->body == "batch of 1");
    }
    // The server thread is held while all three send, then sees them in one round.
    RawClient blocker(server->port());
    REQUIRE(blocker.send("GET /block HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE(entered.get_future().wait_for(patience) == std::future_status::ready);
    for (auto& client : clients) {
        REQUIRE(client->send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"));
    }
    // Loopback delivers within send(); the pause only gives a loaded machine some slack.
    std::this_thread::sleep_for(50ms);
    release.set_value();
    CHECK(blocker.read_response()->body == "unblocked");
    for (auto& client : clients) {
        const auto response = client->read_response();
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->body == "batch of 3");
    }
    CHECK_FALSE(deferred_ran_inside_handler.load());
    std::lock_guard lock(mutex);
    CHECK(batch_sizes == std::vector<std::size_t>{1, 1, 1, 3});
}

TEST_CASE("http server: a body over max_body gets 413 and never reaches the handler") {
    std::atomic<int> handled{0};
    ServerOptions options;
    options.max_body = 1024;
    auto server = start_server(
        [&](ServerRequest& request, Reply reply) {
            ++handled;
            reply.send(text_response(std::to_string(request.body.size())));
        },
        options);
    SUBCASE("declared by Content-Length") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n" +
                    std::string(1025, 'x'));
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 413);
        CHECK(response->header("connection") == "close");
        CHECK(client.wait_closed());
        CHECK(handled == 0);
    }
    SUBCASE("sent in chunks") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        const std::string chunk(600, 'y');
        client.send("POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n" +
                    chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 413);
        CHECK(handled == 0);
    }
    SUBCASE("curl, which sends the whole body anyway, still reads the 413") {
        auto request = request_to(*server, "POST", "/big");
        request.body = std::string(std::size_t{200} * 1024, 'z');
        auto response = make_test_client()->send(request);
        REQUIRE_OK(response);
        CHECK(response->status == 413);
        CHECK(handled == 0);
    }
    SUBCASE("exactly max_body is accepted") {
        auto request = request_to(*server, "POST", "/fits");
        request.body = std::string(1024, 'z');
        auto response = make_test_client()->send(request);
        REQUIRE_OK(response);
        CHECK(response->status == 200);
        CHECK(response->body == "1024");
        CHECK(handled == 1);
    }
}

TEST_CASE("http server: a malformed request gets 400 and the connection closes") {
    std::atomic<int> handled{0};
    auto server = start_server([&](ServerRequest&, Reply reply) {
        ++handled;
        reply.send(text_response("ok"));
    });
    for (const char* garbage : {"this is not http\r\n\r\n",
                                "GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
                                "GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n"}) {
        CAPTURE(garbage);
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send(garbage);
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 400);
        CHECK(response->header("connection") == "close");
        CHECK(response->header("server") == "libci");
        CHECK(client.wait_closed());
    }
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET / HTTP/1.1\r\nX-Huge: " + std::string(20000, 'h') + "\r\n\r\n");
    const auto huge = client.read_response();
    REQUIRE(huge);
    CHECK(huge->status == 431);
    CHECK(handled == 0);
}

TEST_CASE("http server: a chunked stream written from another thread arrives whole") {
    std::vector<std::thread> producers;
    std::mutex producers_mutex;
    std::string expected;
    for (int i = 0; i < 200; ++i) {
        expected += "line " + std::to_string(i) + "\n";
    }
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        if (request.path != "/log") {
            reply.send(text_response("plain"));
            return;
        }
        auto stream = reply.stream(200, "text/plain", {{"X-Stream", "yes"}});
        std::lock_guard lock(producers_mutex);
        producers.emplace_back([stream] {
            for (int i = 0; i < 200; ++i) {
                CHECK(stream->write("line " + std::to_string(i) + "\n"));
                if (i % 50 == 0) {
                    std::this_thread::sleep_for(2ms); // let some chunks leave on their own
                }
            }
            CHECK(stream->write("")); // ignored, but the stream is still open
            stream->finish();
            CHECK_FALSE(stream->write("after finish"));
        });
    });
    SUBCASE("raw: exact chunked framing, then the connection serves the next request") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("GET /log HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 200);
        CHECK(response->header("transfer-encoding") == "chunked");
        CHECK_FALSE(response->header("content-length"));
        CHECK(response->header("x-stream") == "yes");
        CHECK(response->header("server") == "libci");
        CHECK(response->body == expected);
        CHECK(response->chunks >= 1);
        client.send("GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto next = client.read_response();
        REQUIRE(next);
        CHECK(next->body == "plain");
        CHECK(server->connections() == 1);
    }
    SUBCASE("curl") {
        auto response = make_test_client()->send(request_to(*server, "GET", "/log"));
        REQUIRE_OK(response);
        CHECK(response->status == 200);
        CHECK(response->body == expected);
    }
    SUBCASE("HTTP/1.0: the body is sent as is and ends with the connection") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("GET /log HTTP/1.0\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK_FALSE(response->header("transfer-encoding"));
        CHECK(response->body == expected);
    }
    std::lock_guard lock(producers_mutex);
    for (auto& producer : producers) {
        producer.join();
    }
}

TEST_CASE("http server: a stream notices when its client disconnects") {
    Mailbox<std::shared_ptr<ResponseStream>> streams;
    auto server = start_server([&](ServerRequest&, Reply reply) {
        auto stream = reply.stream(200, "text/event-stream");
        stream->write("data: first\n\n");
        streams.put(std::move(stream));
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET /follow HTTP/1.1\r\nHost: x\r\n\r\n");
    auto stream = streams.take();
    REQUIRE(stream);
    REQUIRE(client.wait_for("data: first"));
    CHECK_FALSE((*stream)->closed());
    CHECK((*stream)->write("data: second\n\n"));
    REQUIRE(client.wait_for("data: second"));
    client.close();
    CHECK(eventually([&] { return (*stream)->closed(); }));
    CHECK_FALSE((*stream)->write("data: third\n\n"));
    CHECK(eventually([&] { return server->connections() == 0; }));
}

TEST_CASE("http server: a stream destroyed unfinished cuts its connection") {
    auto server = start_server([&](ServerRequest&, Reply reply) {
        auto stream = reply.stream(200, "text/plain");
        stream->write("partial");
        // Dropped without finish(): a terminating chunk would claim the body was whole.
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(client.wait_closed());
    const std::string& received = client.unread();
    CHECK(received.find("Transfer-Encoding: chunked\r\n") != std::string::npos);
    // The chunk that was written, and no terminating zero chunk after it.
    CHECK(received.ends_with("\r\n\r\n7\r\npartial\r\n"));
}

TEST_CASE("http server: streams and replies held past ~Server are safe and closed") {
    Mailbox<std::shared_ptr<ResponseStream>> streams;
    Mailbox<Reply> replies;
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        if (request.path == "/stream") {
            auto stream = reply.stream(200, "text/plain");
            stream->write("started\n");
            streams.put(std::move(stream));
        } else {
            replies.put(std::move(reply));
        }
    });
    RawClient streaming(server->port());
    RawClient waiting(server->port());
    REQUIRE(streaming.connected());
    REQUIRE(waiting.connected());
    streaming.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    waiting.send("GET /pending HTTP/1.1\r\nHost: x\r\n\r\n");
    auto stream = streams.take();
    auto reply = replies.take();
    REQUIRE(stream);
    REQUIRE(reply);
    REQUIRE(streaming.wait_for("started"));
    CHECK_FALSE((*stream)->closed());

    // A producer keeps writing while the server goes away.
    std::atomic<bool> producing{true};
    std::thread producer([&, held = *stream] {
        while (producing) {
            held->write("more\n");
            std::this_thread::yield();
        }
    });
    const auto before = std::chrono::steady_clock::now();
    server.reset();
    CHECK(std::chrono::steady_clock::now() - before < 2s);
    producing = false;
    producer.join();

    CHECK((*stream)->closed());
    CHECK_FALSE((*stream)->write("after"));
    (*stream)->finish();
    reply->send(text_response("too late"));
    CHECK(streaming.wait_closed());
    CHECK(waiting.wait_closed());
    CHECK(waiting.unread().find("too late") == std::string::npos);
    stream->reset(); // the last references, destroyed after the server: harmless too
    reply.reset();
}

TEST_CASE("http server: stop_accepting refuses new connections and finishes requests") {
    Mailbox<Reply> held;
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        if (request.path == "/pending") {
            held.put(std::move(reply));
        } else {
            reply.send(text_response("now"));
        }
    });
    RawClient busy(server->port());
    RawClient idle(server->port());
    REQUIRE(busy.connected());
    REQUIRE(idle.connected());
    idle.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(idle.read_response()); // now an idle keep-alive connection
    busy.send("GET /pending HTTP/1.1\r\nHost: x\r\n\r\n");
    auto reply = held.take();
    REQUIRE(reply);
    CHECK(server->connections() == 2);

    server->stop_accepting();
    RawClient refused(server->port());
    CHECK_FALSE(refused.connected());
    CHECK(refused.connect_errno() == ECONNREFUSED);
    CHECK(idle.wait_closed());

    reply->send(text_response("answered"));
    const auto response = busy.read_response();
    REQUIRE(response);
    CHECK(response->body == "answered");
    CHECK(response->header("connection") == "close");
    CHECK(busy.wait_closed());
    busy.close();
    CHECK(eventually([&] { return server->connections() == 0; }));
}

TEST_CASE("http server: start fails naming the address and port") {
    auto first = start_server([](ServerRequest&, Reply reply) { reply.send({}); });
    ServerOptions options;
    options.port = first->port();
    auto second = Server::start(options, [](ServerRequest&, Reply reply) { reply.send({}); });
    REQUIRE_FALSE(second);
    CHECK(second.error().code == ci::ErrorCode::Io);
    CHECK(second.error().message ==
          "listen on 127.0.0.1:" + std::to_string(first->port()) + ": Address already in use");
    CHECK(second.error().native == EADDRINUSE);

    options.address = "not-an-address";
    auto invalid = Server::start(options, [](ServerRequest&, Reply reply) { reply.send({}); });
    REQUIRE_FALSE(invalid);
    CHECK(invalid.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(invalid.error().message.find("not-an-address") != std::string::npos);
}

TEST_CASE("http server: an idle keep-alive connection is closed after idle_timeout") {
    ServerOptions options;
    options.idle_timeout = 1s;
    auto server =
        start_server([](ServerRequest&, Reply reply) { reply.send(text_response("")); }, options);
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    REQUIRE(client.read_response());
    const auto idle_since = std::chrono::steady_clock::now();
    CHECK(client.wait_closed());
    const auto idle_for = std::chrono::steady_clock::now() - idle_since;
    CHECK(idle_for > 800ms);
    CHECK(idle_for < 4s);
    CHECK(eventually([&] { return server->connections() == 0; }));
}

TEST_CASE("http server: several I/O threads serve many concurrent clients") {
    std::mutex workers_mutex;
    std::vector<std::thread> workers;
    ServerOptions options;
    options.threads = 4;
    auto server = start_server(
        [&](ServerRequest& request, Reply reply) {
            if (request.query.contains("later")) {
                std::lock_guard lock(workers_mutex);
                workers.emplace_back([reply, body = request.target]() mutable {
                    reply.send(text_response(std::move(body)));
                });
            } else {
                reply.send(text_response(request.target));
            }
        },
        options);
    std::atomic<int> wrong{0};
    std::vector<std::thread> clients;
    clients.reserve(6);
    for (int c = 0; c < 6; ++c) {
        clients.emplace_back([&, c] {
            auto client = make_test_client();
            for (int i = 0; i < 40; ++i) {
                auto request = request_to(*server, "GET", "/c" + std::to_string(c));
                request.query = "i=" + std::to_string(i) + (i % 3 == 0 ? "&later=1" : "");
                auto response = client->send(request);
                if (!response || response->body != request.path + "?" + request.query) {
                    ++wrong;
                }
            }
        });
    }
    for (auto& client : clients) {
        client.join();
    }
    CHECK(wrong == 0);
    std::lock_guard lock(workers_mutex);
    CHECK(workers.size() == 6 * 14);
    for (auto& worker : workers) {
        worker.join();
    }
}

TEST_CASE("http server: connections beyond the per-address limit get 503 and are closed") {
    ServerOptions options;
    options.max_connections_per_address = 3;
    auto server =
        start_server([](ServerRequest&, Reply reply) { reply.send(text_response("ok")); }, options);
    std::vector<std::unique_ptr<RawClient>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<RawClient>(server->port()));
        REQUIRE(held.back()->connected());
    }
    REQUIRE(eventually([&] { return server->connections() == 3; }));
    {
        RawClient over(server->port());
        REQUIRE(over.connected());
        const auto refused = over.read_response();
        REQUIRE(refused);
        CHECK(refused->status == 503);
        CHECK(refused->header("retry-after") == "5");
        CHECK(over.wait_closed());
    }
    // Those held still work, and a connection that closes makes room for another.
    held[0]->send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto answer = held[0]->read_response();
    REQUIRE(answer);
    CHECK(answer->status == 200);
    held.pop_back();
    REQUIRE(eventually([&] { return server->connections() == 2; }));
    RawClient again(server->port());
    REQUIRE(again.connected());
    again.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const auto served = again.read_response();
    REQUIRE(served);
    CHECK(served->status == 200);
}

TEST_CASE("http server: the total connection limit holds whatever the address") {
    ServerOptions options;
    options.max_connections = 2;
    auto server =
        start_server([](ServerRequest&, Reply reply) { reply.send(text_response("ok")); }, options);
    RawClient first(server->port());
    RawClient second(server->port());
    REQUIRE(eventually([&] { return server->connections() == 2; }));
    RawClient third(server->port());
    REQUIRE(third.connected());
    const auto refused = third.read_response();
    REQUIRE(refused);
    CHECK(refused->status == 503);
}

TEST_CASE("http server: a header check answers before the body is read, and may lower max_body") {
    std::atomic<int> handled{0};
    std::atomic<int> checked{0};
    ServerOptions options;
    options.check_header = [&](const ServerRequest& request,
                               std::size_t& max_body) -> std::optional<ServerResponse> {
        ++checked;
        CHECK(request.body.empty());
        CHECK(request.remote_address == "127.0.0.1");
        if (request.path == "/locked") {
            return text_response("no", 401);
        }
        if (request.path == "/small") {
            max_body = 10;
        }
        return std::nullopt;
    };
    auto server = start_server(
        [&](ServerRequest& request, Reply reply) {
            ++handled;
            reply.send(text_response(request.body));
        },
        options);
    SUBCASE("a refused request with Expect: 100-continue gets no 100 and its body is not read") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("POST /locked HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                    "Expect: 100-continue\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 401);
        CHECK(response->header("connection") == "close");
        CHECK(client.wait_closed());
        CHECK(handled == 0);
    }
    SUBCASE("a refused request without a body keeps its connection") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("GET /locked HTTP/1.1\r\nHost: x\r\n\r\nGET /open HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto refused = client.read_response();
        REQUIRE(refused);
        CHECK(refused->status == 401);
        const auto served = client.read_response();
        REQUIRE(served);
        CHECK(served->status == 200);
        CHECK(handled == 1);
    }
    SUBCASE("a lowered max_body: 413 by Content-Length and by chunks") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890");
        const auto by_length = client.read_response();
        REQUIRE(by_length);
        CHECK(by_length->status == 413);
        RawClient chunked(server->port());
        chunked.send("POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n");
        const auto by_chunks = chunked.read_response();
        REQUIRE(by_chunks);
        CHECK(by_chunks->status == 413);
        RawClient fits(server->port());
        fits.send("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
        const auto served = fits.read_response();
        REQUIRE(served);
        CHECK(served->status == 200);
        CHECK(served->body == "0123456789");
        CHECK(handled == 1);
    }
}

TEST_CASE("http server: bodies beyond max_body_memory get 503 with Retry-After") {
    ServerOptions options;
    options.max_body_memory = 1000;
    Mailbox<Reply> held;
    auto server = start_server(
        [&](ServerRequest& request, Reply reply) {
            if (request.path == "/hold") {
                held.put(std::move(reply)); // keeps its body in memory until answered
                return;
            }
            reply.send(text_response(std::to_string(request.body.size())));
        },
        options);
    RawClient holder(server->port());
    REQUIRE(holder.connected());
    holder.send("POST /hold HTTP/1.1\r\nHost: x\r\nContent-Length: 800\r\n\r\n" +
                std::string(800, 'h'));
    auto reply = held.take();
    REQUIRE(reply);
    SUBCASE("declared by Content-Length: refused before the body is read") {
        RawClient client(server->port());
        client.send("POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n");
        const auto refused = client.read_response();
        REQUIRE(refused);
        CHECK(refused->status == 503);
        CHECK(refused->header("retry-after") == "5");
    }
    SUBCASE("sent in chunks: refused when they pass it") {
        RawClient client(server->port());
        client.send("POST /other HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "c8\r\n" +
                    std::string(200, 'c') + "\r\nc8\r\n" + std::string(200, 'c') + "\r\n0\r\n\r\n");
        const auto refused = client.read_response();
        REQUIRE(refused);
        CHECK(refused->status == 503);
    }
    SUBCASE("a body that fits is served; once the held one is answered, room is back") {
        RawClient client(server->port());
        client.send("POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 150\r\n\r\n" +
                    std::string(150, 'f'));
        const auto fits = client.read_response();
        REQUIRE(fits);
        CHECK(fits->status == 200);
        reply->send(text_response("done"));
        REQUIRE(holder.read_response());
        holder.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"); // the next request frees the body
        REQUIRE(holder.read_response());
        RawClient large(server->port());
        large.send("POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n" +
                   std::string(900, 'l'));
        const auto served = large.read_response();
        REQUIRE(served);
        CHECK(served->status == 200);
        CHECK(served->body == "900");
    }
    if (!reply->answered()) {
        reply->send(text_response("done"));
    }
}

TEST_CASE("http server: a header or body sent byte by byte is cut at its deadline (slowloris)") {
    ServerOptions options;
    options.idle_timeout = 60s; // long: only the header and request deadlines can close these
    options.header_timeout = 1s;
    options.request_timeout = 2s;
    std::atomic<int> handled{0};
    auto server = start_server(
        [&](ServerRequest&, Reply reply) {
            ++handled;
            reply.send(text_response("ok"));
        },
        options);
    // Sends `text` one byte per 100 ms; true when the server closed the connection before all
    // of it was sent (or within 5 s after).
    const auto cut_while_sending = [](RawClient& client, std::string_view text) {
        for (const char c : text) {
            if (!client.send(std::string_view(&c, 1))) {
                return true;
            }
            std::this_thread::sleep_for(100ms);
        }
        return client.wait_closed();
    };
    SUBCASE("a header that takes longer than header_timeout") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        // 60 bytes: 6 s at this pace, well past the 1 s allowed.
        const std::string header =
            "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(24, 's') + "\r\n\r\n";
        CHECK(cut_while_sending(client, header));
        CHECK(handled == 0);
    }
    SUBCASE("a body that takes longer than request_timeout") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        client.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\n\r\n");
        CHECK(cut_while_sending(client, std::string(60, 'b')));
        CHECK(handled == 0);
    }
    SUBCASE("a connection that waits before its first byte is not cut by header_timeout") {
        RawClient client(server->port());
        REQUIRE(client.connected());
        std::this_thread::sleep_for(1500ms);
        client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        const auto response = client.read_response();
        REQUIRE(response);
        CHECK(response->status == 200);
    }
}

TEST_CASE("http server: a sized stream sends Content-Length, no chunks, and keeps the connection") {
    auto server = start_server([&](ServerRequest& request, Reply reply) {
        auto stream = reply.stream_sized(200, "application/octet-stream", 10);
        if (request.path == "/short") {
            stream->write("12345");
        } else {
            stream->write("12345");
            stream->write("67890extra"); // beyond the length: dropped
        }
        stream->finish();
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET /whole HTTP/1.1\r\nHost: x\r\n\r\n");
    auto whole = client.read_response();
    REQUIRE(whole);
    CHECK(whole->header("content-length") == "10");
    CHECK_FALSE(whole->header("transfer-encoding"));
    CHECK(whole->body == "1234567890"); // "extra" was dropped
    // The same connection serves the next requests, a HEAD with its length and no body too.
    client.send("GET /again HTTP/1.1\r\nHost: x\r\n\r\nHEAD /head HTTP/1.1\r\nHost: x\r\n\r\n");
    auto again = client.read_response();
    REQUIRE(again);
    CHECK(again->body == "1234567890");
    auto head = client.read_response(true);
    REQUIRE(head);
    CHECK(head->header("content-length") == "10");
    client.send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
    auto third = client.read_response();
    REQUIRE(third);
    CHECK(third->body == "1234567890"); // no HEAD body was sent before it
    CHECK(server->connections() == 1);

    // Finished short of its length: the connection closes, so the client sees a cut body.
    RawClient cut(server->port());
    REQUIRE(cut.connected());
    cut.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(cut.wait_closed());
    CHECK(cut.unread().ends_with("\r\n\r\n12345"));
}

TEST_CASE("http server: when_drained holds a producer until its client has taken the queue") {
    Mailbox<std::shared_ptr<ResponseStream>> streams;
    auto server = start_server([&](ServerRequest&, Reply reply) {
        streams.put(
            reply.stream_sized(200, "application/octet-stream", std::uint64_t{32} * 1024 * 1024));
    });
    RawClient client(server->port());
    REQUIRE(client.connected());
    client.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto stream = streams.take();
    REQUIRE(stream);
    // The client reads nothing: the socket buffers fill and the rest stays queued.
    for (int i = 0; i < 32; ++i) {
        (*stream)->write(std::string(std::size_t{1024} * 1024, 'x'));
    }
    std::atomic<int> calls{0};
    CHECK((*stream)->when_drained(std::size_t{1024} * 1024, [&] { ++calls; }));
    CHECK(calls == 0);
    // A low water already met is not waited for: false, and the callback is not kept.
    auto idle = start_server([&](ServerRequest&, Reply reply) {
        streams.put(reply.stream_sized(200, "text/plain", 2));
    });
    RawClient other(idle->port());
    REQUIRE(other.connected());
    other.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    auto second = streams.take();
    REQUIRE(second);
    CHECK_FALSE((*second)->when_drained(0, [&] { calls += 100; }));
    (*second)->write("ok");
    (*second)->finish();
    // Closing the slow client runs the held callback (the producer must see closed()).
    client.close();
    CHECK(eventually([&] { return calls == 1; }));
    CHECK((*stream)->closed());
}
