#include "master/router.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

#include <ci/core/log.h>

#include "master/forms.h"
#include "master/json.h"

namespace ci::master {

std::string_view PathParams::get(std::string_view name) const {
    for (const auto& [key, value] : values_) {
        if (key == name) {
            return value;
        }
    }
    return {};
}

namespace {
std::optional<std::int64_t> to_integer(std::string_view text);
} // namespace

std::optional<std::int64_t> PathParams::integer(std::string_view name) const {
    const auto value = to_integer(get(name));
    return value && *value >= 0 ? value : std::nullopt;
}

namespace {
std::optional<std::int64_t> to_integer(std::string_view text) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}
} // namespace

Result<std::int64_t> query_number(const http::ServerRequest& request,
                                  const std::string& name,
                                  std::int64_t fallback,
                                  std::int64_t min,
                                  std::int64_t max) {
    const auto found = request.query.find(name);
    if (found == request.query.end()) {
        return fallback;
    }
    const auto value = to_integer(found->second);
    if (!value || *value < min || *value > max) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("query parameter {}: expected an integer from {} to {}, not \"{}\"",
                                name,
                                min,
                                max,
                                log::field(found->second, 32)));
    }
    return *value;
}

std::vector<std::string_view> path_segments(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        const auto slash = path.find('/');
        const auto segment = path.substr(0, slash);
        if (!segment.empty()) {
            out.push_back(segment);
        }
        if (slash == std::string_view::npos) {
            break;
        }
        path.remove_prefix(slash + 1);
    }
    return out;
}

void Router::add(std::string method,
                 std::string_view pattern,
                 RouteHandler handler,
                 bool authenticated,
                 std::string summary,
                 std::size_t max_body) {
    add(std::move(method),
        pattern,
        std::move(handler),
        authenticated ? Guard::Authenticated : Guard::None,
        std::move(summary),
        max_body);
}

void Router::add(std::string method,
                 std::string_view pattern,
                 RouteHandler handler,
                 Guard guard,
                 std::string summary,
                 std::size_t max_body) {
    Route route{std::move(method), {}, std::move(handler), guard, std::move(summary), max_body};
    for (const auto segment : path_segments(pattern)) {
        route.segments.emplace_back(segment);
    }
    routes_.push_back(std::move(route));
}

bool Router::match(const Route& route,
                   const std::vector<std::string_view>& path,
                   PathParams& params) {
    // A last segment "{name...}" captures the rest of the path (possibly nothing).
    const bool tail = !route.segments.empty() && route.segments.back().ends_with("...}") &&
                      route.segments.back().front() == '{';
    const auto fixed = tail ? route.segments.size() - 1 : route.segments.size();
    if (tail ? path.size() < fixed : path.size() != fixed) {
        return false;
    }
    if (tail) {
        const auto& segment = route.segments.back();
        const auto name = std::string_view(segment).substr(1, segment.size() - 5);
        if (path.size() == fixed) {
            params.add(name, {});
        } else {
            // The segments are views into one path: the rest runs from the first to the last.
            const auto* begin = path[fixed].data();
            const auto* end = path.back().data() + path.back().size();
            params.add(name, std::string_view(begin, static_cast<std::size_t>(end - begin)));
        }
    }
    for (std::size_t i = 0; i < fixed; ++i) {
        const auto& segment = route.segments[i];
        if (segment.size() > 2 && segment.front() == '{' && segment.back() == '}') {
            params.add(std::string_view(segment).substr(1, segment.size() - 2), path[i]);
        } else if (segment != path[i]) {
            return false;
        }
    }
    return true;
}

const Router::Route* Router::find(const http::ServerRequest& request) const {
    const auto path = path_segments(request.path);
    const bool head = request.method == "HEAD";
    for (const auto& route : routes_) {
        PathParams params;
        if (match(route, path, params) &&
            (route.method == request.method || (head && route.method == "GET"))) {
            return &route;
        }
    }
    return nullptr;
}

http::ServerResponse hashes_busy() {
    auto response = error_response(
        503, "too many password checks are waiting (the server's hash budget); try again soon");
    response.headers.emplace_back("Retry-After", "1");
    return response;
}

namespace {

// The key of `user` from `client` in the per-pair limiter (a user name cut to 64 bytes).
std::string pair_key(const std::string& client, const std::string& user) {
    return address_key(client) + " " + user.substr(0, 64);
}

} // namespace

std::optional<http::ServerResponse> Router::refuse_guess(const std::string& client,
                                                         const std::string& user) {
    const auto pair = pair_key(client, user);
    if (const auto wait = pair_failures_.blocked(pair)) {
        return too_many_failures(*wait);
    }
    // Over the address's looser cap, only users it has not failed for are still checked.
    if (const auto wait = auth_failures_.blocked(client);
        wait && pair_failures_.failures(pair) > 0) {
        return too_many_failures(*wait);
    }
    return std::nullopt;
}

std::expected<Router::CheckClaim, http::ServerResponse>
Router::claim_check(const std::string& client, const std::string& user) {
    auto pair = pair_key(client, user);
    auto address = address_key(client);
    const auto free_left = std::max<std::int64_t>(
        1, FailureLimiter::http_policy().free_failures - pair_failures_.failures(pair));
    const std::lock_guard lock(claims_mutex_);
    const auto running = pair_checks_.find(pair);
    if (running != pair_checks_.end() && running->second >= free_left) {
        return std::unexpected(too_many_failures(std::chrono::seconds(1)));
    }
    const auto held = address_checks_.find(address);
    if (held != address_checks_.end() && held->second >= max_checks_per_address) {
        return std::unexpected(hashes_busy());
    }
    ++pair_checks_[pair];
    ++address_checks_[address];
    // The deleter gives the place back; `this` only makes the pointer non-null.
    return CheckClaim(static_cast<void*>(this),
                      [this, pair = std::move(pair), address = std::move(address)](void*) {
                          const std::lock_guard release(claims_mutex_);
                          if (--pair_checks_[pair] <= 0) {
                              pair_checks_.erase(pair);
                          }
                          if (--address_checks_[address] <= 0) {
                              address_checks_.erase(address);
                          }
                      });
}

void Router::count_password(const std::string& client, const std::string& user, bool right) {
    const auto pair = pair_key(client, user);
    if (right) {
        pair_failures_.succeeded(pair);
        return;
    }
    (void)pair_failures_.count_failure(pair, FailureLimiter::Clock::now());
    auth_failures_.failed(client); // logs the line
}

std::optional<http::ServerResponse> Router::screen(const http::ServerRequest& request,
                                                   Verdict verdict) {
    if (verdict.answer) {
        // A browser's first try, without credentials, is not a guess.
        if (verdict.answer->status == 401 && !request.header("authorization").empty()) {
            count_password(request.remote_address, verdict.user, false);
        }
        return std::move(verdict.answer);
    }
    if (!verdict.slow) {
        return std::nullopt; // remembered credentials, or none needed
    }
    if (auto refused = refuse_guess(request.remote_address, verdict.user)) {
        return refused;
    }
    if (hashes_.full()) {
        return hashes_busy();
    }
    return std::nullopt; // the body is read, then handle() checks the password on the pool
}

std::optional<http::ServerResponse> Router::check_header(const http::ServerRequest& request,
                                                         std::size_t& max_body) {
    const auto* route = find(request);
    if (auto refused = check_host(request, route)) {
        return refused;
    }
    if (route == nullptr) {
        max_body = std::min(max_body, api_max_body); // a 404 or 405 follows
        return std::nullopt;
    }
    max_body = std::min(max_body, route->max_body);
    switch (route->guard) {
    case Guard::None:
        return view_ ? screen(request, view_(request)) : std::nullopt;
    case Guard::Public:
        return std::nullopt;
    case Guard::Form:
        if (auto refused = refuse_cross_site(request, form_media_type)) {
            return refused;
        }
        return form_ ? form_(request)
                     : std::optional(error_response(403, "the config has no auth: no logins"));
    case Guard::Login:
        if (auto refused = refuse_cross_site(request, form_media_type)) {
            return refused;
        }
        if (hashes_.full()) {
            return hashes_busy();
        }
        return std::nullopt; // the handler checks its user (refuse_guess) once it has the form
    case Guard::Signed:
        if (const auto wait = signature_failures_.blocked(request.remote_address)) {
            return too_many_failures(*wait);
        }
        return std::nullopt;
    case Guard::Authenticated:
        break;
    }
    if (auto refused = refuse_cross_site(request)) {
        return refused;
    }
    return check_ ? screen(request, check_(request)) : std::nullopt;
}

std::optional<http::ServerResponse> Router::check_host(const http::ServerRequest& request,
                                                       const Route* route) const {
    if (host_names_.empty() || (route != nullptr && route->guard == Guard::Signed) ||
        request.path == "/healthz") {
        return std::nullopt;
    }
    return refuse_wrong_host(request, host_names_);
}

void Router::run(const Route& route, http::ServerRequest& request, const http::Reply& reply) {
    PathParams params;
    (void)match(route, path_segments(request.path), params);
    route.handler(request, params, reply);
}

void Router::handle(http::ServerRequest& request, http::Reply reply) {
    const auto path = path_segments(request.path);
    const bool head = request.method == "HEAD";
    std::vector<std::string_view> allowed;
    for (const auto& route : routes_) {
        PathParams params;
        if (!match(route, path, params)) {
            continue;
        }
        if (route.method != request.method && !(head && route.method == "GET")) {
            allowed.push_back(route.method);
            if (route.method == "GET") {
                allowed.emplace_back("HEAD"); // answered as GET is, without the body
            }
            continue;
        }
        // Again (the server ran check_header before the body): a handler runs only for a
        // request its guard lets through, whoever calls handle().
        if (auto refused = check_host(request, &route)) {
            reply.send(std::move(*refused));
            return;
        }
        if (route.guard == Guard::Form) {
            if (!form_) {
                reply.send(error_response(403, "the config has no auth: no logins"));
                return;
            }
            if (auto refused = form_(request)) {
                reply.send(std::move(*refused));
                return;
            }
        }
        const AuthCheck* check = route.guard == Guard::Authenticated ? &check_
                                 : route.guard == Guard::None        ? &view_
                                                                     : nullptr;
        auto verdict = check != nullptr && *check ? (*check)(request) : Verdict::pass();
        if (verdict.answer) {
            reply.send(std::move(*verdict.answer));
            return;
        }
        if (!verdict.slow) {
            route.handler(request, params, std::move(reply));
            return;
        }
        // A password to hash: on the pool; the handler runs afterwards on a server thread.
        auto claim = claim_check(request.remote_address, verdict.user);
        if (!claim) {
            reply.send(std::move(claim.error()));
            return;
        }
        auto owned = std::make_shared<http::ServerRequest>(std::move(request));
        const bool posted = hashes_.post([this,
                                          &route,
                                          owned,
                                          reply,
                                          claim = std::move(*claim),
                                          slow = std::move(verdict.slow),
                                          user = std::move(verdict.user)]() mutable {
            auto refused = slow(*owned);
            count_password(owned->remote_address, user, !refused);
            claim.reset(); // counted: the pair's next check may run
            reply.defer([&route, owned, reply, refused = std::move(refused)]() mutable {
                if (refused) {
                    reply.send(std::move(*refused));
                } else {
                    run(route, *owned, reply);
                }
            });
        });
        if (!posted) {
            reply.send(hashes_busy());
        }
        return;
    }
    if (!allowed.empty()) {
        auto response = error_response(405,
                                       fmt::format("{} {} is not allowed; use {}",
                                                   log::field(request.method, 32),
                                                   log::field(request.path),
                                                   fmt::join(allowed, " or ")));
        response.headers.emplace_back("Allow", fmt::format("{}", fmt::join(allowed, ", ")));
        reply.send(std::move(response));
        return;
    }
    if (request.path.starts_with("/api/")) {
        reply.send(error_response(404,
                                  fmt::format("no {} {} in the API (GET /api/v1 lists it)",
                                              log::field(request.method, 32),
                                              log::field(request.path))));
        return;
    }
    const auto message = fmt::format("no such page: {}", log::field(request.path));
    reply.send(not_found_page_ && wants_page(request) ? not_found_page_(request, message)
                                                      : error_response(404, message));
}

std::vector<std::string> Router::endpoints() const {
    std::vector<std::string> out;
    for (const auto& route : routes_) {
        if (!route.summary.empty()) {
            out.push_back(route.summary);
        }
    }
    return out;
}

} // namespace ci::master
