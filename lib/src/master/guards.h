#pragma once

// What the master's HTTP routes check before a request's body is read: who may keep guessing
// (FailureLimiter, failure_limiter.h: wrong passwords and wrong webhook signatures, per address,
// with a delay that grows), and whether a request to a route that changes something comes from a
// page of another site (CSRF) or brings a body that is not JSON.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// The host names a master is served as, lower-cased, without duplicates: `localhost`,
/// `buildmaster.host`, the host of `buildmaster.url` and each of `buildmaster.web_hosts`.
[[nodiscard]] std::vector<std::string> served_host_names(std::string_view host,
                                                         std::string_view url,
                                                         const std::vector<std::string>& web_hosts);

/// Checks a request's `Host` header against DNS rebinding (a page of another site whose name
/// was made to resolve to this master, reading what anonymous viewers may read): nullopt when
/// it names one of `names` (lower-case; any port, a final '.' ignored) or an IP address (an
/// IPv4 address, or an IPv6 address in brackets: no other site's page has that origin), or when
/// the request has no Host (not a browser); a 400 when the Host is not a host[:port]; else a
/// 421 naming the Host and the config key that would accept it.
[[nodiscard]] std::optional<http::ServerResponse>
refuse_wrong_host(const http::ServerRequest& request, const std::vector<std::string>& names);

} // namespace ci::master
