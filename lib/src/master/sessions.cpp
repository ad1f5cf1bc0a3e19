#include "master/sessions.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/core/log.h>

#include "core/ascii.h"
#include "master/forms.h"

namespace ci::master {

namespace {

// How long a good Authorization header is remembered.
constexpr auto remember_basic = std::chrono::minutes(5);
constexpr std::size_t max_remembered = 1000;
// Password hashes at once (each scrypt takes 32 MiB at the default parameters).
constexpr int max_hashing = 2;
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
    // An unknown user is checked against a hash that costs what the first user's does.
    for (const auto& [name, hash] : users_) {
        if (hash) {
            dummy_ = *hash;
            break;
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
    if (!auth.user.empty() && user == auth.user) {
        // The old plain password: no hash to pay for.
        return crypto::constant_time_equal(password, auth.password) ? std::optional(auth.user)
                                                                    : std::nullopt;
    }
    const crypto::PasswordHash* hash = nullptr;
    bool known = false;
    for (const auto& [name, parsed] : users_) {
        if (name == user) {
            known = parsed.has_value();
            hash = parsed ? &*parsed : nullptr;
            break;
        }
    }
    if (hash == nullptr && users_.empty()) {
        return std::nullopt; // nobody has a hash: nothing to hide by hashing
    }
    {
        std::unique_lock lock(hashing_mutex_);
        hashing_done_.wait(lock, [this] { return hashing_ < max_hashing; });
        ++hashing_;
    }
    const bool right = crypto::verify_password(hash != nullptr ? *hash : dummy_, password);
    {
        const std::lock_guard lock(hashing_mutex_);
        --hashing_;
    }
    hashing_done_.notify_one();
    return right && known ? std::optional(std::string(user)) : std::nullopt;
}

std::optional<std::string> Sessions::basic_user(const http::ServerRequest& request) const {
    const auto header = request.header("authorization");
    if (header.size() < 6 || !ascii_iequals(header.substr(0, 6), "basic ")) {
        return std::nullopt;
    }
    const auto key = crypto::to_hex(crypto::hmac_sha256(basic_key_, header));
    const auto now = clock_.monotonic();
    {
        const std::lock_guard lock(mutex_);
        if (const auto found = remembered_.find(key); found != remembered_.end()) {
            if (now < found->second.until) {
                return found->second.user;
            }
            remembered_.erase(found);
        }
    }
    auto decoded = crypto::base64_decode(header.substr(6));
    if (!decoded) {
        return std::nullopt;
    }
    const auto colon = decoded->find(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    auto user = check_password(std::string_view(*decoded).substr(0, colon),
                               std::string_view(*decoded).substr(colon + 1));
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
    for (const auto id : cookie_values(header, session_cookie)) {
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
    if (sessions_.size() >= policy_.max_sessions) {
        // The least recently used goes (a flood of logins of one user cannot grow memory).
        auto oldest = sessions_.begin();
        for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
            if (it->second.used < oldest->second.used) {
                oldest = it;
            }
        }
        sessions_.erase(oldest);
    }
    sessions_[id_key(*id)] = Session{user, *csrf, now, now};
    return Opened{std::move(*id), Viewer{user, std::move(*csrf)}};
}

void Sessions::close(const http::ServerRequest& request) {
    const auto header = request.header("cookie");
    const std::lock_guard lock(mutex_);
    for (const auto id : cookie_values(header, session_cookie)) {
        if (well_formed_id(id)) {
            sessions_.erase(id_key(id));
        }
    }
}

std::string Sessions::set_cookie(const http::ServerRequest& request, std::string_view id) const {
    const bool secure = config_.buildmaster.url.starts_with("https://") ||
                        ascii_iequals(request.header("x-forwarded-proto"), "https");
    return fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                       session_cookie,
                       id,
                       id.empty() ? 0 : policy_.max_age.count(),
                       secure ? "; Secure" : "");
}

std::size_t Sessions::size() const {
    const std::lock_guard lock(mutex_);
    return sessions_.size();
}

} // namespace ci::master
