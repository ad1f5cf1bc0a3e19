// The libcurl client against a local server: methods, exact headers and bodies, connection
// reuse, retries with backoff, timeouts, streamed uploads, and errors that name the request.

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ci/http/client.h>

#include "support/local_http_server.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using ci::test::LocalHttpServer;
using ci::test::Reply;

ci::http::Request request_to(const LocalHttpServer& server, std::string method, std::string path) {
    ci::http::Request request;
    request.method = std::move(method);
    request.scheme = "http";
    request.host = server.authority();
    request.path = std::move(path);
    return request;
}

std::unique_ptr<ci::http::Client> fast_client(int attempts = 1) {
    ci::http::ClientOptions options;
    options.retry.max_attempts = attempts;
    options.retry.base_backoff = 1ms;
    options.retry.max_backoff = 5ms;
    options.timeout = 5s;
    return ci::http::make_client(options);
}

} // namespace

TEST_CASE("http client: each method arrives with exactly its headers and body") {
    LocalHttpServer server([](const ci::test::ReceivedRequest& r) {
        return Reply{200, {{"X-Seen", r.method}}, "answer to " + r.method, 0ms, false};
    });
    auto client = fast_client();
    for (const char* method : {"GET", "PUT", "POST", "DELETE", "HEAD"}) {
        CAPTURE(method);
        auto request = request_to(server, method, "/a%20b/c");
        request.query = "x=1&y=%2F";
        request.headers = {{"X-Custom", "value"}, {"Content-Type", "text/plain"}};
        if (std::string_view(method) == "PUT" || std::string_view(method) == "POST") {
            request.body = "payload";
        }
        auto response = client->send(request);
        REQUIRE_OK(response);
        CHECK(response->status == 200);
        CHECK(*response->header("x-seen") == method);
        CHECK(response->body ==
              (std::string_view(method) == "HEAD" ? "" : "answer to " + std::string(method)));
        const auto received = server.requests().back();
        CHECK(received.method == method);
        CHECK(received.target == "/a%20b/c?x=1&y=%2F");
        CHECK(*received.header("x-custom") == "value");
        CHECK(*received.header("content-type") == "text/plain");
        CHECK(received.header("expect") == nullptr);
        CHECK(received.header("accept") == nullptr);
        CHECK(received.body == request.body);
    }
}

TEST_CASE("http client: a request's Host header is what the server sees, and no header is added") {
    LocalHttpServer server([](const ci::test::ReceivedRequest&) { return Reply{}; });
    auto client = fast_client();
    auto request = request_to(server, "POST", "/");
    request.headers = {{"Host", "bucket.example.com"}};
    request.body = std::string(1 << 20, 'x'); // large enough for curl to want 100-continue
    REQUIRE_OK(client->send(request));
    const auto received = server.requests().back();
    CHECK(*received.header("host") == "bucket.example.com");
    CHECK(received.header("expect") == nullptr);
    CHECK(received.header("content-type") == nullptr);
    CHECK(*received.header("content-length") == std::to_string(1 << 20));
    CHECK(received.body.size() == (1U << 20U));
}

TEST_CASE("http client: a 404 is a response; connections are reused") {
    LocalHttpServer server([](const ci::test::ReceivedRequest& r) {
        return Reply{r.target == "/missing" ? 404 : 200, {}, "x", 0ms, false};
    });
    auto client = fast_client();
    auto missing = client->send(request_to(server, "GET", "/missing"));
    REQUIRE_OK(missing);
    CHECK(missing->status == 404);
    for (int i = 0; i < 9; ++i) {
        REQUIRE_OK(client->send(request_to(server, "GET", "/ok")));
    }
    CHECK(server.requests().size() == 10);
    CHECK(server.connections() == 1);
}

TEST_CASE("http client: retries") {
    std::atomic<int> calls{0};
    SUBCASE("a 503 then a 200: two attempts") {
        LocalHttpServer server([&](const ci::test::ReceivedRequest&) {
            return ++calls == 1 ? Reply{503, {}, "busy", 0ms, false}
                                : Reply{200, {}, "ok", 0ms, false};
        });
        auto response = fast_client(4)->send(request_to(server, "GET", "/"));
        REQUIRE_OK(response);
        CHECK(response->status == 200);
        CHECK(response->attempts == 2);
    }
    SUBCASE("a dropped connection is retried") {
        LocalHttpServer server([&](const ci::test::ReceivedRequest&) {
            return ++calls == 1 ? Reply{200, {}, "", 0ms, true} : Reply{200, {}, "ok", 0ms, false};
        });
        auto response = fast_client(3)->send(request_to(server, "PUT", "/"));
        REQUIRE_OK(response);
        CHECK(response->body == "ok");
        CHECK(response->attempts == 2);
    }
    SUBCASE("a 400 is not retried; attempts are capped") {
        LocalHttpServer server([&](const ci::test::ReceivedRequest& r) {
            ++calls;
            return Reply{r.target == "/bad" ? 400 : 503, {}, "", 0ms, false};
        });
        auto client = fast_client(3);
        auto bad = client->send(request_to(server, "GET", "/bad"));
        REQUIRE_OK(bad);
        CHECK(bad->attempts == 1);
        calls = 0;
        auto busy = client->send(request_to(server, "GET", "/busy"));
        REQUIRE_OK(busy);
        CHECK(busy->status == 503);
        CHECK(busy->attempts == 3);
        CHECK(calls == 3);
    }
    SUBCASE("a custom predicate decides") {
        LocalHttpServer server([&](const ci::test::ReceivedRequest&) {
            return ++calls < 3 ? Reply{400, {}, "<Code>Throttling</Code>", 0ms, false}
                               : Reply{200, {}, "", 0ms, false};
        });
        ci::http::ClientOptions options;
        options.retry.base_backoff = 1ms;
        options.retry.retryable = [](const ci::http::Response& r) {
            return r.body.find("Throttling") != std::string::npos;
        };
        auto response = ci::http::make_client(options)->send(request_to(server, "POST", "/"));
        REQUIRE_OK(response);
        CHECK(response->attempts == 3);
    }
}

TEST_CASE("http client: errors name the request but never its query") {
    SUBCASE("a timeout") {
        LocalHttpServer server([](const ci::test::ReceivedRequest&) {
            return Reply{200, {}, "late", 2000ms, false};
        });
        ci::http::ClientOptions options;
        options.timeout = 200ms;
        options.retry.max_attempts = 1;
        auto request = request_to(server, "GET", "/slow");
        request.query = "X-Amz-Signature=secret";
        auto response = ci::http::make_client(options)->send(request);
        REQUIRE_FALSE(response.has_value());
        CHECK(response.error().code == ci::ErrorCode::Timeout);
        CHECK(response.error().message.starts_with("GET http://" + server.authority() + "/slow: "));
        CHECK(response.error().message.find("secret") == std::string::npos);
    }
    SUBCASE("nobody listening") {
        int port = 0;
        {
            LocalHttpServer gone([](const ci::test::ReceivedRequest&) { return Reply{}; });
            port = gone.port();
        }
        ci::http::Request request;
        request.scheme = "http";
        request.host = "127.0.0.1:" + std::to_string(port);
        auto response = fast_client(2)->send(request);
        REQUIRE_FALSE(response.has_value());
        CHECK(response.error().code == ci::ErrorCode::Transport);
        CHECK(response.error().native.has_value());
        CHECK(response.error().message.ends_with("(after 2 attempts)"));
    }
}

TEST_CASE("http client: a body streamed from a file arrives whole, on every attempt") {
    ci::test::TempDir dir;
    std::string content(4 << 20, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) {
        content[i] = static_cast<char>(i * 31 % 256);
    }
    const auto file = ci::test::write_file(dir / "upload.bin", content);
    std::atomic<int> calls{0};
    LocalHttpServer server([&](const ci::test::ReceivedRequest&) {
        return ++calls == 1 ? Reply{503, {}, "", 0ms, false} : Reply{200, {}, "", 0ms, false};
    });
    auto request = request_to(server, "PUT", "/upload");
    request.body_file = file.string();
    auto response = fast_client(2)->send(request);
    REQUIRE_OK(response);
    CHECK(response->attempts == 2);
    const auto received = server.requests();
    REQUIRE(received.size() == 2);
    CHECK(received[0].body == content);
    CHECK(received[1].body == content);

    request.body_file = (dir / "absent.bin").string();
    auto missing = fast_client(3)->send(request);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::Io);
    CHECK(missing.error().message.find("absent.bin") != std::string::npos);

    // A range of the file (a multipart upload's part), sent again whole on a retry.
    calls = 0;
    request.body_file = file.string();
    request.body_offset = 1000;
    request.body_size = 5000;
    auto part = fast_client(2)->send(request);
    REQUIRE_OK(part);
    CHECK(part->attempts == 2);
    const auto parts = server.requests();
    REQUIRE(parts.size() == 4); // the two above (the missing file sent none), and these two
    CHECK(parts[2].body == content.substr(1000, 5000));
    CHECK(parts[3].body == content.substr(1000, 5000));
    request.body_size = 0; // the rest of the file
    REQUIRE_OK(fast_client(1)->send(request));
    CHECK(server.requests().back().body == content.substr(1000));
    request.body_offset = content.size() - 10;
    request.body_size = 11; // past the end: refused before anything is sent
    auto past = fast_client(1)->send(request);
    REQUIRE_FALSE(past.has_value());
    CHECK(past.error().code == ci::ErrorCode::Io);
    CHECK(server.requests().size() == 5);
}

TEST_CASE("http client: one client serves several threads at once") {
    LocalHttpServer server([](const ci::test::ReceivedRequest& r) {
        return Reply{200, {}, r.target, 5ms, false};
    });
    auto client = fast_client();
    std::atomic<int> correct{0};
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 10; ++i) {
                const std::string path = "/t" + std::to_string(t) + "/" + std::to_string(i);
                auto response = client->send(request_to(server, "GET", path));
                correct += response && response->body == path ? 1 : 0;
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(correct == 40);
    CHECK(server.connections() <= 4);
}
