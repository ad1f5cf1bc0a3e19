#pragma once

/// \file
/// What the reporters that send over HTTP (GitHub statuses, Zulip messages) share: the verdict
/// on a service's answer.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/report/reporter.h>

namespace ci::report {

/// What to do with a message after the service answered.
struct Verdict {
    enum class Kind {
        Sent,  ///< 2xx
        Retry, ///< 5xx, a rate limit, a network error: send it again after `wait` (0: backoff)
        Drop,  ///< refused for good (401, 404, 422, ...): `why`
    };
    Kind kind = Kind::Sent;
    std::chrono::seconds wait{0};
    std::string why;
};

/// The value of header `name` as a whole integer (`Retry-After: 7`), or nullopt when absent or
/// not one.
[[nodiscard]] std::optional<std::int64_t> header_integer(const http::Response& response,
                                                         std::string_view name);

/// A POST to `base_url` (an http(s) URL, maybe with a path; trailing slashes ignored) followed
/// by `path` (already encoded). Fails with InvalidArgument naming `key` (the config key the
/// URL came from) when `base_url` is not an http(s) URL.
[[nodiscard]] Result<http::Request>
post_request(std::string_view base_url, std::string_view path, std::string_view key);

} // namespace ci::report
