#pragma once

// What the master's HTTP routes check before a request's body is read: who may keep guessing
// (FailureLimiter, failure_limiter.h: wrong passwords and wrong webhook signatures, per address,
// with a delay that grows), and whether a request to a route that changes something comes from a
// page of another site (CSRF) or brings a body that is not JSON.

#include <chrono>
#include <optional>
#include <string_view>

#include <ci/http/server.h>

#include "master/failure_limiter.h"

namespace ci::master {

/// 429 with Retry-After: `address` failed too often and must wait `wait`.
[[nodiscard]] http::ServerResponse too_many_failures(std::chrono::seconds wait);

/// What the web UI's forms post.
inline constexpr std::string_view form_media_type = "application/x-www-form-urlencoded";

/// Checks a request to a route that changes something, before its body is read: a 403 when
/// `Sec-Fetch-Site` says another site sent it (anything but `same-origin` or `none`), or when its
/// `Origin` is `null` or names another host than its `Host`; a 415 when it has a body whose
/// Content-Type is not `expected_type` (the API's JSON, or form_media_type). nullopt when it may go
/// on. Clients that are not browsers send neither header and pass.
[[nodiscard]] std::optional<http::ServerResponse>
refuse_cross_site(const http::ServerRequest& request,
                  std::string_view expected_type = "application/json");

} // namespace ci::master
