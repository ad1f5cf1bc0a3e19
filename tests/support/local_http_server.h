#pragma once

// A small HTTP/1.1 server on 127.0.0.1, on a port the kernel picks, for tests of the HTTP client
// and of code that talks to a service with no real local implementation (the EC2 instance
// metadata service). It records every request and answers through a handler; connections are
// kept alive, so connection reuse can be counted.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ci/http/request.h>

namespace ci::test {

/// A request as the server received it.
struct ReceivedRequest {
    std::string method;
    std::string target; ///< path and query as sent
    http::Headers headers;
    std::string body;
    int connection = 0; ///< which accepted connection it came on (1, 2, ...)

    [[nodiscard]] const std::string* header(std::string_view name) const {
        return http::find_header(headers, name);
    }
};

/// What the handler answers.
struct Reply {
    int status = 200;
    http::Headers headers;
    std::string body;
    std::chrono::milliseconds delay{0}; ///< wait this long before answering
    bool drop = false;                  ///< close the connection without answering
};

class LocalHttpServer {
public:
    using Handler = std::function<Reply(const ReceivedRequest&)>;

    /// Listens on 127.0.0.1:0 and serves on a thread. Throws std::runtime_error on failure.
    explicit LocalHttpServer(Handler handler);
    ~LocalHttpServer();
    LocalHttpServer(const LocalHttpServer&) = delete;
    LocalHttpServer& operator=(const LocalHttpServer&) = delete;

    [[nodiscard]] int port() const noexcept { return port_; }
    /// "127.0.0.1:<port>"
    [[nodiscard]] std::string authority() const;
    /// "http://127.0.0.1:<port>"
    [[nodiscard]] std::string url() const { return "http://" + authority(); }
    /// Every request received so far.
    [[nodiscard]] std::vector<ReceivedRequest> requests() const;
    /// How many connections were accepted.
    [[nodiscard]] int connections() const noexcept { return connections_.load(); }

private:
    void serve();
    void serve_connection(int fd, int number);

    Handler handler_;
    int listener_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<int> connections_{0};
    mutable std::mutex mutex_;
    std::vector<ReceivedRequest> requests_;
    std::vector<std::thread> workers_;
    std::thread acceptor_;
};

} // namespace ci::test
