#include "master/sessions.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <ci/core/log.h>

#include "core/ascii.h"
#include "master/forms.h"

namespace ci::master {

namespace {

// How long a good Authorization header is remembered.
constexpr auto remember_basic = std::chrono::minutes(5);
constexpr std::size_t max_remembered = 1000;
constexpr std::size_t session_id_bytes = 32;

std::string id_key(std::string_view id) {
    return crypto::to_hex(crypto::sha256(id));
}

// A session id as open() makes them: 64 lower-case hex digits.
bool well_formed_id(std::string_view id) {
    return id.size() == 2 * session_id_bytes && std::ranges::all_of(id, [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

// What a check against `hash` costs, roughly, in seconds of one core (measured here: scrypt
// ln=15, r=8, p=1 ~0.07 s; PBKDF2-SHA256 600,000 ~0.11 s). Only compared, to pick the dummy.
double hash_cost(const crypto::PasswordHash& hash) {
    if (hash.kind == crypto::PasswordHash::Kind::Scrypt) {
        return 0.07 * std::ldexp(1.0, hash.log2_n - 15) * (hash.r / 8.0) * hash.p;
    }
    return 0.11 * hash.iterations / 600000.0;
}

} // namespace

Sessions::Sessions(const config::Config& config, const Clock& clock, SessionPolicy policy)
    : config_(config), clock_(clock), policy_(policy) {
    if (config.auth && !config.auth->user.empty()) {
        log::warn("auth.password: the password of {} is plain text in the config; list the user "
                  "under auth.users with a password_hash from `ci-master hash-password`",
                  log::field(config.auth->user, 64));
    }
    if (config.auth) {
        for (const auto& user : config.auth->users) {
            auto parsed = crypto::parse_password_hash(user.password_hash);
            if (!parsed) {
                log::error("auth.users: {}: {}; this user cannot log in",
                           log::field(user.user, 64),
                           parsed.error().message);
            }
            users_.emplace_back(user.user,
                                parsed ? std::optional(std::move(*parsed)) : std::nullopt);
        }
    }
    // An unknown user is checked against a hash that costs what the costliest user's does.
    for (const auto& [name, hash] : users_) {
        if (hash && (dummy_.hash.empty() || hash_cost(*hash) > hash_cost(dummy_))) {
            dummy_ = *hash;
        }
    }
    dummy_.salt.assign(16, '\0');
    dummy_.hash.assign(32, '\0');
    if (auto key = crypto::random_token(32)) {
        basic_key_ = std::move(*key);
    }
}

std::optional<std::string> Sessions::check_password(std::string_view user,
                                                    std::string_view password) const {
    if (!config_.auth) {
        return std::nullopt;
    }
    const auto& auth = *config_.auth;
    const crypto::PasswordHash* hash = nullptr;
    bool known = false;
    for (const auto& [name, parsed] : users_) {
        if (name == user) {
            known = parsed.has_value();
            hash = parsed ? &*parsed : nullptr;
            break;
        }
    }
    const bool plain = !auth.user.empty() && user == auth.user;
    if (plain) {
        known = false; // the old plain user: its password is compared below
        hash = nullptr;
    }
    // Every name costs one hash when any user has one: no timing tells a hashed user from the
    // plain one or from a name that is not configured.
    const bool right = users_.empty()
                           ? false
                           : crypto::verify_password(hash != nullptr ? *hash : dummy_, password);
    if (plain) {
        return crypto::constant_time_equal(password, auth.password) ? std::optional(auth.user)
                                                                    : std::nullopt;
    }
    return right && known ? std::optional(std::string(user)) : std::nullopt;
}

std::optional<SentPassword> Sessions::basic_password(const http::ServerRequest& request) {
    const auto header = request.header("authorization");
    if (header.size() < 6 || !ascii_iequals(header.substr(0, 6), "basic ")) {
        return std::nullopt;
    }
    auto decoded = crypto::base64_decode(header.substr(6));
    if (!decoded) {
        return std::nullopt;
    }
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    return SentPassword{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

std::optional<std::string> Sessions::remembered_locked(const std::string& key, MonoTime now) const {
    // The key is an HMAC under a random key of this process: looking it up tells an attacker
    // nothing of a header it does not know.
    if (const auto found = remembered_.find(key); found != remembered_.end()) {
        if (now < found->second.until) {
            return found->second.user;
        }
        remembered_.erase(found);
    }
    return std::nullopt;
}

std::optional<std::string> Sessions::remembered_user(const http::ServerRequest& request) const {
    const auto header = request.header("authorization");
    if (header.empty()) {
        return std::nullopt;
    }
    const auto key = crypto::to_hex(crypto::hmac_sha256(basic_key_, header));
    const std::lock_guard lock(mutex_);
    return remembered_locked(key, clock_.monotonic());
}

std::optional<std::string> Sessions::basic_user(const http::ServerRequest& request) const {
    const auto header = request.header("authorization");
    const auto key = crypto::to_hex(crypto::hmac_sha256(basic_key_, header));
    const auto now = clock_.monotonic();
    {
        const std::lock_guard lock(mutex_);
        if (auto user = remembered_locked(key, now)) {
            return user;
        }
    }
    const auto sent = basic_password(request);
    if (!sent) {
        return std::nullopt;
    }
    auto user = check_password(sent->user, sent->password);
    if (user) {
        const std::lock_guard lock(mutex_);
        if (remembered_.size() >= max_remembered) {
            remembered_.clear();
        }
        remembered_[key] = Remembered{*user, now + remember_basic};
    }
    return user;
}

Sessions::Session* Sessions::find_locked(std::string_view id, MonoTime now) const {
    if (!well_formed_id(id)) {
        return nullptr;
    }
    const auto found = sessions_.find(id_key(id));
    if (found == sessions_.end()) {
        return nullptr;
    }
    auto& session = found->second;
    if (now - session.used >= policy_.idle_timeout || now - session.created >= policy_.max_age) {
        sessions_.erase(found);
        return nullptr;
    }
    return &session;
}

Viewer Sessions::viewer(const http::ServerRequest& request) const {
    const auto header = request.header("cookie");
    if (header.empty()) {
        return {};
    }
    const auto now = clock_.monotonic();
    const std::lock_guard lock(mutex_);
    for (const auto id : cookie_values(header, cookie_name(request))) {
        if (auto* session = find_locked(id, now)) {
            session->used = now;
            return Viewer{session->user, session->csrf_token};
        }
    }
    return {};
}

Result<Sessions::Opened> Sessions::open(const std::string& user) {
    auto id = crypto::random_token(session_id_bytes);
    auto csrf = crypto::random_token(32);
    if (!id || !csrf) {
        return fail(ErrorCode::Internal, "open a session: the CSPRNG failed");
    }
    const auto now = clock_.monotonic();
    const std::lock_guard lock(mutex_);
    // Beyond the user's own cap, the user's least recently used session goes; beyond the
    // cap of all, the least recently used of all (memory stays bounded either way).
    auto oldest = sessions_.end();
    auto oldest_of_user = sessions_.end();
    std::size_t of_user = 0;
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
        if (oldest == sessions_.end() || it->second.used < oldest->second.used) {
            oldest = it;
        }
        if (it->second.user == user) {
            ++of_user;
            if (oldest_of_user == sessions_.end() ||
                it->second.used < oldest_of_user->second.used) {
                oldest_of_user = it;
            }
        }
    }
    if (of_user >= policy_.max_sessions_per_user && oldest_of_user != sessions_.end()) {
        sessions_.erase(oldest_of_user);
    } else if (sessions_.size() >= policy_.max_sessions && oldest != sessions_.end()) {
        sessions_.erase(oldest);
    }
    sessions_[id_key(*id)] = Session{user, *csrf, now, now};
    return Opened{std::move(*id), Viewer{user, std::move(*csrf)}};
}

void Sessions::close(const http::ServerRequest& request) {
    const auto header = request.header("cookie");
    const std::lock_guard lock(mutex_);
    for (const auto id : cookie_values(header, cookie_name(request))) {
        if (well_formed_id(id)) {
            sessions_.erase(id_key(id));
        }
    }
}

bool Sessions::secure(const http::ServerRequest& request) const {
    return config_.buildmaster.url.starts_with("https://") ||
           ascii_iequals(request.header("x-forwarded-proto"), "https");
}

std::string_view Sessions::cookie_name(const http::ServerRequest& request) const {
    return secure(request) ? secure_session_cookie : session_cookie;
}

std::string Sessions::set_cookie(const http::ServerRequest& request, std::string_view id) const {
    // `__Host-`: the browser keeps it only when Secure, with Path=/ and no Domain.
    return fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                       cookie_name(request),
                       id,
                       id.empty() ? 0 : policy_.max_age.count(),
                       secure(request) ? "; Secure" : "");
}

std::size_t Sessions::size() const {
    const std::lock_guard lock(mutex_);
    return sessions_.size();
}

} // namespace ci::master
