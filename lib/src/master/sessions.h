#pragma once

// Who is looking at a web UI page: a logged-in user of the config's `auth`, or nobody. The UI's
// pages ask Sessions::viewer for each request, show action forms (force, stop, cancel, worker
// actions) only to a logged-in viewer, and put its CSRF token into each form as the hidden field
// `csrf`.
//
// Sessions also checks passwords, for POST /login and for the API's HTTP basic: the old single
// `auth.user`/`auth.password` (plain, compared in constant time) and `auth.users` (hashes,
// ci/core/password.h). A check costs what the hash costs (scrypt at the default parameters:
// about 0.07 s and 32 MiB): the router runs checks on its HashPool, never on an HTTP thread.
// Every check of a name costs one hash when any user has one: a user name that is not
// configured, and the old plain user, are checked against a dummy hash with the costliest
// parameters of the configured users (no timing tells which users exist). An API client that
// keeps sending the same good credentials pays the hash once per five minutes: good
// Authorization headers are remembered (by an HMAC under a random per-process key, never the
// header itself).
//
// Sessions live in memory only: a restart of the master logs everyone out (docs/api.md). A
// session id is 256 bits from the CSPRNG, sent as the cookie `libci_session` (HttpOnly,
// SameSite=Strict, Path=/), or over HTTPS as `__Host-libci_session` (Secure too, and no Domain:
// no other site or plain-HTTP page can set it), and kept here only as its SHA-256. A session ends
// at logout, after `idle_timeout` without a request, or `max_age` after login.

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/crypto.h>
#include <ci/core/password.h>
#include <ci/http/server.h>

namespace ci::master {

/// The person behind one request to a page.
struct Viewer {
    std::string user;       ///< the logged-in user; empty: nobody is logged in
    std::string csrf_token; ///< what each form must send back as `csrf`; empty when anonymous

    [[nodiscard]] bool logged_in() const { return !user.empty(); }
};

/// The session cookie's name, and its name over HTTPS.
inline constexpr std::string_view session_cookie = "libci_session";
inline constexpr std::string_view secure_session_cookie = "__Host-libci_session";

/// A user name and password as a client sent them.
struct SentPassword {
    std::string user;
    std::string password;
};

/// How long sessions last, and how many there may be.
struct SessionPolicy {
    std::chrono::seconds idle_timeout{std::chrono::hours(12)};
    std::chrono::seconds max_age{std::chrono::hours(24 * 7)};
    std::size_t max_sessions = 10000; ///< beyond, the least recently used ends
    /// Sessions of one user at most; beyond, that user's least recently used ends (so that one
    /// account logging in over and over cannot end everyone else's sessions).
    std::size_t max_sessions_per_user = 100;
};

/// The web UI's logins. Thread-safe.
class Sessions {
public:
    /// Sessions for the users of `config.auth` (none when it is absent); `config` and `clock`
    /// must outlive this. Parses the users' password hashes (check-config has checked them: one
    /// that fails here only never matches).
    Sessions(const config::Config& config, const Clock& clock, SessionPolicy policy = {});

    /// The viewer of `request` (from its session cookie): anonymous without a live session. A
    /// request with a live session keeps it alive (its idle time starts again).
    [[nodiscard]] Viewer viewer(const http::ServerRequest& request) const;

    /// The user `user` when `password` is its password; nullopt otherwise. Costs a hash (see
    /// the top of this file): call it on the router's HashPool.
    [[nodiscard]] std::optional<std::string> check_password(std::string_view user,
                                                            std::string_view password) const;

    /// The user of the request's `Authorization: Basic` header when its password is right;
    /// nullopt when it is absent or wrong. Costs a hash unless the header is remembered.
    [[nodiscard]] std::optional<std::string> basic_user(const http::ServerRequest& request) const;
    /// The user of the request's Authorization header when it was found right lately
    /// (remembered); nullopt otherwise. No hash: quick.
    [[nodiscard]] std::optional<std::string>
    remembered_user(const http::ServerRequest& request) const;
    /// The user and password of an `Authorization: Basic` header; nullopt when there is none or
    /// it is malformed.
    [[nodiscard]] static std::optional<SentPassword>
    basic_password(const http::ServerRequest& request);

    /// A new session of `user` (after check_password): its id, the cookie's value, and its
    /// viewer. Fails with Internal when the CSPRNG fails.
    struct Opened {
        std::string id;
        Viewer viewer;
    };
    [[nodiscard]] Result<Opened> open(const std::string& user);

    /// Ends the session of `request`'s cookie (nothing when it has none).
    void close(const http::ServerRequest& request);

    /// The Set-Cookie value that gives the browser session `id` (empty: that removes the
    /// cookie). Over HTTPS (the config's buildmaster.url is https, or a proxy says so with
    /// `X-Forwarded-Proto: https`) the cookie is `__Host-libci_session` and Secure.
    [[nodiscard]] std::string set_cookie(const http::ServerRequest& request,
                                         std::string_view id) const;

    /// Whether any user can log in (the config has `auth`).
    [[nodiscard]] bool enabled() const { return config_.auth.has_value(); }
    /// Live sessions now (for tests and metrics).
    [[nodiscard]] std::size_t size() const;

private:
    struct Session {
        std::string user;
        std::string csrf_token;
        MonoTime created;
        MonoTime used;
    };
    struct Remembered {
        std::string user;
        MonoTime until;
    };

    // The session of a cookie value, or nullptr; drops it when it has expired. Needs mutex_.
    Session* find_locked(std::string_view id, MonoTime now) const;
    // Whether `request` came over HTTPS (see set_cookie), and the cookie's name then.
    [[nodiscard]] bool secure(const http::ServerRequest& request) const;
    [[nodiscard]] std::string_view cookie_name(const http::ServerRequest& request) const;
    // The remembered user of an Authorization header's HMAC; nullopt when not remembered.
    [[nodiscard]] std::optional<std::string> remembered_locked(const std::string& key,
                                                               MonoTime now) const;

    const config::Config& config_;
    const Clock& clock_;
    const SessionPolicy policy_;
    std::vector<std::pair<std::string, std::optional<crypto::PasswordHash>>> users_;
    /// Hashed for an unknown user and the plain one: the costliest parameters of the users'.
    crypto::PasswordHash dummy_;
    std::string basic_key_; ///< the HMAC key of remembered Authorization headers

    mutable std::mutex mutex_;
    /// By the hex SHA-256 of the session id.
    mutable std::map<std::string, Session, std::less<>> sessions_;
    /// Good Authorization headers, by their HMAC under basic_key_.
    mutable std::map<std::string, Remembered, std::less<>> remembered_;
};

} // namespace ci::master
