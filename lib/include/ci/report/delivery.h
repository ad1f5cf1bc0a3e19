#pragma once

/// \file
/// What the reporters that send over HTTP (GitHub statuses, Zulip messages) share: the verdict
/// on a service's answer, and operational events (a reporter giving up, the store degraded)
/// that a reporter may pass on (Zulip's `ops_stream`).

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ci/http/client.h>

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

/// Something an operator should hear of that is no build's result.
struct OpsEvent {
    enum class Kind {
        ReporterGaveUp,        ///< a reporter dropped a message it could not send in time
        StoreDegraded,         ///< the master's writes to its store fail
        InstanceNotTerminated, ///< a latent worker's instance did not terminate (EC2, to come)
    };
    Kind kind = Kind::ReporterGaveUp;
    std::string text; ///< one line for people; never a secret
};

/// Where operational events go (the master's Reports, which passes them to every reporter).
/// May be called from any thread; must not block.
using OpsHook = std::function<void(const OpsEvent&)>;

} // namespace ci::report
