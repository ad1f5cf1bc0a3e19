#pragma once

// The master's HTTP routes: a table of (method, path pattern) -> handler. A pattern is a path
// whose segments are literals or `{name}` captures ("/api/v1/builds/{id}/steps/{n}/log"); a
// GET route answers HEAD too. A path that matches no route is a 404; one that matches only
// with another method is a 405 naming the allowed ones. Routes marked `authenticated` run only
// for a request that passes the router's check (the config's auth).

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/http/server.h>

namespace ci::master {

/// The captures of a matched pattern, by name.
class PathParams {
public:
    [[nodiscard]] std::string_view get(std::string_view name) const;
    /// The capture as a non-negative integer; nullopt when it is not one.
    [[nodiscard]] std::optional<std::int64_t> integer(std::string_view name) const;
    void add(std::string_view name, std::string_view value) { values_.emplace_back(name, value); }

private:
    std::vector<std::pair<std::string_view, std::string_view>> values_;
};

using RouteHandler =
    std::function<void(http::ServerRequest& request, const PathParams& params, http::Reply reply)>;

class Router {
public:
    /// Checks a request to an authenticated route: nullopt to let it through, else the answer.
    using Check = std::function<std::optional<http::ServerResponse>(const http::ServerRequest&)>;
    explicit Router(Check check) : check_(std::move(check)) {}

    /// Adds a route. `summary` is what GET /api/v1 lists for it (empty: not listed).
    void add(std::string method,
             std::string_view pattern,
             RouteHandler handler,
             bool authenticated = false,
             std::string summary = {});

    /// Answers `request` with the route it matches, or 404/405.
    void handle(http::ServerRequest& request, http::Reply reply) const;

    /// The listed routes' summaries, in the order they were added.
    [[nodiscard]] std::vector<std::string> endpoints() const;

private:
    struct Route {
        std::string method;
        std::vector<std::string> segments;
        RouteHandler handler;
        bool authenticated = false;
        std::string summary;
    };
    [[nodiscard]] static bool
    match(const Route& route, const std::vector<std::string_view>& path, PathParams& params);

    Check check_;
    std::vector<Route> routes_;
};

/// A query parameter as an integer clamped to [1, max]; `fallback` when absent or not one.
[[nodiscard]] int
query_int(const http::ServerRequest& request, const std::string& name, int fallback, int max);
/// A query parameter as an integer; nullopt when absent or not one.
[[nodiscard]] std::optional<std::int64_t> query_integer(const http::ServerRequest& request,
                                                        const std::string& name);

/// A path's non-empty segments: "/api/v1/builds/4/" -> {"api", "v1", "builds", "4"}.
[[nodiscard]] std::vector<std::string_view> path_segments(std::string_view path);

} // namespace ci::master
