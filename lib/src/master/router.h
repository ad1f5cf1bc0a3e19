#pragma once

// The master's HTTP routes: a table of (method, path pattern) -> handler. A pattern is a path
// whose segments are literals or `{name}` captures ("/api/v1/builds/{id}/steps/{n}/log"), the
// last of which may be `{name...}`, capturing the rest of the path, possibly empty
// ("/results/{path...}"); a GET route answers HEAD too. A path that matches no route is a 404; one
// that matches only with another method is a 405 naming the allowed ones. Routes marked
// `authenticated` run only for a request that passes the router's check (the config's auth).
//
// Before a request's body is read (check_header, the HTTP server's HeaderCheck), the router
// sets the body limit of the route it matches, and for an authenticated route refuses a
// cross-site request (403) or a body that is not JSON (415), makes an address that sent wrong
// passwords too often wait (429), and refuses missing or malformed credentials (401), all
// without reading the body; remembered right credentials pass there too.
// Checking a password costs a hash (scrypt ~0.07 s and 32 MiB): such checks (a Verdict with
// `slow`) do not run on the HTTP thread. check_header lets the request's body be read (when the
// hash budget has room, else 503 with Retry-After), and handle() runs the hash on the router's
// HashPool, then the handler on a server thread; credentials a check remembers as verified pass
// at once. Wrong passwords count per (address, user) (5 free, then a growing wait: 429 without a
// hash) and per address, more loosely (30 free): an address over its cap is still checked for a
// user it has not failed for (a right password from behind a shared proxy gets through, at a
// hash's cost), never again for one it has.
//
// A route marked `signed` (the webhook) is refused with 429 too while its address waits for
// having sent wrong signatures (counted by signature_failures()).
//
// The web UI's routes: a `Form` route (force, stop, cancel, logout) is refused cross-site (403)
// or with a body that is not a form (415), and runs only for a viewer with a session (the form
// check: else 303 to the login page); its handler checks the form's csrf field. `Login` (POST
// /login) is refused cross-site too, and with 429 while its address waits for having sent wrong
// passwords. Every other route (`None`) answers only what the view check lets through (with
// `auth.view: login`, a session or HTTP basic), except `Public` ones (the login page, static
// files, /healthz).

#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>
#include <ci/http/server.h>

#include "master/guards.h"
#include "master/hash_pool.h"

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

/// The largest body of an API request, and of a GitHub webhook (GitHub's own cap: 25 MB).
inline constexpr std::size_t api_max_body = std::size_t{64} * 1024;
inline constexpr std::size_t webhook_max_body = std::size_t{25} * 1024 * 1024;

/// How a route is guarded (see the top of this file).
enum class Guard {
    None,          ///< anyone the view check lets through
    Authenticated, ///< the router's check (the config's auth), and CSRF
    Signed,        ///< checks its own signature, reporting failures to signature_failures()
    Form,          ///< a web UI form with a session (the form check); its handler checks csrf
    Login,         ///< POST /login: same-site forms only, and rate limited
    Public,        ///< anyone, whatever the view check says
};

using RouteHandler =
    std::function<void(http::ServerRequest& request, const PathParams& params, http::Reply reply)>;

/// What an authentication check decides on a server thread, quickly: refuse (`answer`), let
/// through (neither set), or check a password (`slow`, run on the hash pool, which answers as
/// a Check does).
struct Verdict {
    std::optional<http::ServerResponse> answer;
    std::function<std::optional<http::ServerResponse>(const http::ServerRequest&)> slow;
    std::string user; ///< the user the credentials name (wrong ones count per address and user)

    [[nodiscard]] static Verdict pass() { return {}; }
    [[nodiscard]] static Verdict refuse(http::ServerResponse response) {
        return Verdict{std::move(response), {}, {}};
    }
};

class Router {
public:
    /// Checks a request to a guarded route: nullopt to let it through, else the answer.
    using Check = std::function<std::optional<http::ServerResponse>(const http::ServerRequest&)>;
    /// Checks credentials (see Verdict).
    using AuthCheck = std::function<Verdict(const http::ServerRequest&)>;
    /// `check`: the Authenticated routes' (HTTP basic). `view`: the None routes' (none: anyone).
    /// `form`: the Form routes' (none: refused). A view check's 401 to a request with an
    /// Authorization header counts as a wrong password, as the API's does.
    explicit Router(AuthCheck check,
                    AuthCheck view = {},
                    Check form = {},
                    unsigned hash_threads = HashPool::default_threads,
                    std::size_t hash_budget = HashPool::default_budget)
        : check_(std::move(check)), view_(std::move(view)), form_(std::move(form)),
          hashes_(hash_threads, hash_budget) {}

    /// Checks the Host of every request (refuse_wrong_host, guards.h: DNS rebinding) against
    /// `names` (served_host_names), except the webhook's (Signed: its signature is its guard,
    /// and GitHub sends whatever name its hook was given) and /healthz's (load balancers' probes
    /// name an instance's address or an internal name). Empty (the default): no Host check.
    /// Called before the server starts.
    void check_hosts(std::vector<std::string> names) { host_names_ = std::move(names); }

    /// What a browser asking for a page (forms.h, wants_page) gets for a path no route has:
    /// an HTML 404 page from `page` (which gets the message); without it, or for any other
    /// client, the JSON 404.
    using NotFoundPage =
        std::function<http::ServerResponse(const http::ServerRequest&, std::string_view message)>;
    void on_page_not_found(NotFoundPage page) { not_found_page_ = std::move(page); }

    /// Adds a route. `summary` is what GET /api/v1 lists for it (empty: not listed). Its
    /// bodies may be `max_body` bytes long.
    void add(std::string method,
             std::string_view pattern,
             RouteHandler handler,
             bool authenticated = false,
             std::string summary = {},
             std::size_t max_body = api_max_body);
    /// As above, with a guard.
    void add(std::string method,
             std::string_view pattern,
             RouteHandler handler,
             Guard guard,
             std::string summary,
             std::size_t max_body = api_max_body);

    /// The HTTP server's HeaderCheck: what can be checked of `request` before its body is read
    /// (see the top of this file). Thread-safe.
    [[nodiscard]] std::optional<http::ServerResponse>
    check_header(const http::ServerRequest& request, std::size_t& max_body);

    /// Answers `request` with the route it matches, or 404/405; a password check first goes
    /// to the hash pool (the handler then runs later, on a server thread).
    void handle(http::ServerRequest& request, http::Reply reply);

    /// Wrong webhook signatures, per address (a Signed route reports each one here).
    [[nodiscard]] FailureLimiter& signature_failures() { return signature_failures_; }
    /// Wrong passwords per address, all users together (what logs the wrong-password lines).
    [[nodiscard]] FailureLimiter& auth_failures() { return auth_failures_; }

    /// For a handler that checks a password itself (POST /login), before it posts the hash:
    /// 429 when `client` must wait before it tries `user` again, else nullopt.
    [[nodiscard]] std::optional<http::ServerResponse> refuse_guess(const std::string& client,
                                                                   const std::string& user);
    /// Counts a checked password of `user` from `client`: a wrong one for the address and for
    /// the pair, a right one forgets the pair's failures.
    void count_password(const std::string& client, const std::string& user, bool right);
    /// A place among the password checks running or queued (claim_check), given back when
    /// its last copy goes: hold it in the check posted to the pool, until it was counted.
    using CheckClaim = std::shared_ptr<void>;
    /// The checks of one address running or queued at once, at most: a share of the pool's
    /// budget (16), so one address cannot keep every other's logins out.
    static constexpr int max_checks_per_address = 4;
    /// Before a password check of `user` from `client` is posted to the pool (after
    /// refuse_guess): its claim, or the answer when it must not run now: 429 when the pair has
    /// as many checks running as it has free failures left (at least one; guesses sent at once
    /// would otherwise all be hashed before any was counted), 503 when `client` holds
    /// max_checks_per_address of them.
    [[nodiscard]] std::expected<CheckClaim, http::ServerResponse>
    claim_check(const std::string& client, const std::string& user);
    /// The pool password checks run on.
    [[nodiscard]] HashPool& hashes() { return hashes_; }

    /// The listed routes' summaries, in the order they were added.
    [[nodiscard]] std::vector<std::string> endpoints() const;

private:
    struct Route {
        std::string method;
        std::vector<std::string> segments;
        RouteHandler handler;
        Guard guard = Guard::None;
        std::string summary;
        std::size_t max_body = api_max_body;
    };
    [[nodiscard]] static bool
    match(const Route& route, const std::vector<std::string_view>& path, PathParams& params);
    /// The route `request` would run; nullptr for a 404 or 405.
    [[nodiscard]] const Route* find(const http::ServerRequest& request) const;

    // What check_header does with an auth check's verdict: counts a refusal of credentials,
    // refuses a guess that must wait (429) or a hash over budget (503).
    [[nodiscard]] std::optional<http::ServerResponse> screen(const http::ServerRequest& request,
                                                             Verdict verdict);
    // Runs `route` for `request`, whose guard let it through.
    static void run(const Route& route, http::ServerRequest& request, const http::Reply& reply);

    // The Host check's answer for `request` to `route` (nullptr: a 404 or 405).
    [[nodiscard]] std::optional<http::ServerResponse> check_host(const http::ServerRequest& request,
                                                                 const Route* route) const;

    AuthCheck check_;
    AuthCheck view_;
    std::vector<std::string> host_names_;
    NotFoundPage not_found_page_;
    Check form_;
    std::vector<Route> routes_;
    FailureLimiter auth_failures_{"wrong user or password (API or login)",
                                  FailureLimiter::address_policy()};
    FailureLimiter pair_failures_{"", FailureLimiter::http_policy()}; ///< by address and user
    FailureLimiter signature_failures_{"webhooks with a wrong signature"};
    std::mutex claims_mutex_;
    std::map<std::string, int> pair_checks_;    // checks running or queued, by pair_key
    std::map<std::string, int> address_checks_; // the same, by address_key
    HashPool hashes_; // last: destroyed (its threads joined) before what its checks use
};

/// 503 with Retry-After: the password checks' budget is spent.
[[nodiscard]] http::ServerResponse hashes_busy();

/// A query parameter as an integer in [min, max]; `fallback` when it is absent. Fails with
/// InvalidArgument naming the parameter (for a 400) when it is not an integer or out of range.
[[nodiscard]] Result<std::int64_t> query_number(const http::ServerRequest& request,
                                                const std::string& name,
                                                std::int64_t fallback,
                                                std::int64_t min,
                                                std::int64_t max);

/// A path's non-empty segments: "/api/v1/builds/4/" -> {"api", "v1", "builds", "4"}.
[[nodiscard]] std::vector<std::string_view> path_segments(std::string_view path);

} // namespace ci::master
