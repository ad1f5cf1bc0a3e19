#pragma once

/// \file
/// The HTTP client: sends a Request, returns a Response. A response with any status (404, 503)
/// is a Response; only a request that got no response (DNS, connect, TLS, timeout) is an Error.
/// The implementation over libcurl lives in lib/src/http; nothing here names curl.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/http/request.h>

namespace ci::http {

/// What a server answered.
struct Response {
    int status = 0;
    Headers headers; ///< in the order received; names as the server wrote them
    std::string body;
    int attempts = 1; ///< how many times the request was sent (retries + 1)

    /// The first header named `name` (any case), or nullptr.
    [[nodiscard]] const std::string* header(std::string_view name) const {
        return find_header(headers, name);
    }
};

/// How a client retries: exponential backoff with full jitter (a random wait between zero and
/// min(max_backoff, base_backoff * 2^attempt)), as the AWS SDKs do.
struct RetryPolicy {
    int max_attempts = 4; ///< including the first; 1 disables retries
    std::chrono::milliseconds base_backoff{100};
    std::chrono::milliseconds max_backoff{20000};
    /// Decides whether a response is worth another attempt. The default retries 429, 500, 502,
    /// 503 and 504. Transport errors and timeouts are always retried.
    std::function<bool(const Response&)> retryable;
};

/// Settings of a client, fixed for its lifetime.
struct ClientOptions {
    std::chrono::milliseconds connect_timeout{10000};
    /// The whole exchange, per attempt; 0 means none.
    std::chrono::milliseconds timeout{60000};
    RetryPolicy retry;
    std::string user_agent = "libci";
    /// A CA bundle file; empty uses the system's.
    std::string ca_file;
};

/// Sends requests, reusing connections between them. An implementation is thread-safe: send()
/// may be called from several threads at once.
class Client {
public:
    virtual ~Client() = default;

    /// Sends `request`, retrying as the client's RetryPolicy says; the body is `request.body`,
    /// or the content of `request.body_file`, streamed from disk, when that is set. Fails with
    /// Transport (native: the curl code) when no response came, Timeout when the deadline
    /// passed, Io when the body file cannot be read; the message names "METHOD url" (without
    /// its query, which may hold a presigned signature).
    [[nodiscard]] virtual Result<Response> send(const Request& request) = 0;
};

/// The libcurl client.
// The default is value-initialised (`ClientOptions()`, not `{}`): with `{}` GCC 12 at -O3 reports
// the temporary's std::function as maybe-uninitialized in every caller that takes the default.
[[nodiscard]] std::unique_ptr<Client> make_client(ClientOptions options = ClientOptions());

} // namespace ci::http
