#include "ci/core/log.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/ascii.h"

namespace ci::log {
namespace {

constexpr std::string_view redacted = "[redacted]";

std::atomic<Level> g_level{Level::Info};

struct State {
    std::shared_mutex mutex;
    std::vector<std::string> secrets; // longest first, so a secret containing another wins
    Sink sink;
};

State& state() {
    static State s;
    return s;
}

std::shared_ptr<spdlog::logger> default_logger() {
    static const std::shared_ptr<spdlog::logger> logger = [] {
        auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
        auto created = std::make_shared<spdlog::logger>("libci", sink);
        created->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%-5l%$ %v", spdlog::pattern_time_type::utc);
        created->set_level(spdlog::level::trace);
        return created;
    }();
    return logger;
}

spdlog::level::level_enum to_spdlog(Level level) {
    switch (level) {
    case Level::Trace:
        return spdlog::level::trace;
    case Level::Debug:
        return spdlog::level::debug;
    case Level::Info:
        return spdlog::level::info;
    case Level::Warn:
        return spdlog::level::warn;
    case Level::Error:
        return spdlog::level::err;
    case Level::Off:
        break;
    }
    return spdlog::level::off;
}

bool iends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() &&
           ascii_iequals(text.substr(text.size() - suffix.size()), suffix);
}

void replace_secrets(std::string& text, const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
        for (auto pos = text.find(secret); pos != std::string::npos;
             pos = text.find(secret, pos + redacted.size())) {
            text.replace(pos, secret.size(), redacted);
        }
    }
}

// scheme://userinfo@host: the part after ':' in userinfo, or all of it when there is no ':'
// (a bare token, as in https://TOKEN@github.com/...).
void redact_url_userinfo(std::string& text) {
    for (auto scheme = text.find("://"); scheme != std::string::npos;
         scheme = text.find("://", scheme + 3)) {
        const auto start = scheme + 3;
        auto end = start;
        while (end < text.size() && text[end] != '@' && text[end] != '/' && text[end] != ' ' &&
               text[end] != '\n' && text[end] != '"' && text[end] != '\'') {
            ++end;
        }
        if (end >= text.size() || text[end] != '@' || end == start) {
            continue;
        }
        const auto colon = text.find(':', start);
        const auto secret_start = (colon != std::string::npos && colon < end) ? colon + 1 : start;
        if (secret_start < end) {
            text.replace(secret_start, end - secret_start, redacted);
        }
    }
}

void redact_headers(std::string& text) {
    static constexpr std::array<std::string_view, 3> headers = {
        "authorization:", "x-amz-security-token:", "proxy-authorization:"};
    for (const auto header : headers) {
        std::size_t pos = 0;
        while (pos + header.size() <= text.size()) {
            if (!ascii_iequals(std::string_view(text).substr(pos, header.size()), header) ||
                (pos > 0 && (std::isalnum(static_cast<unsigned char>(text[pos - 1])) != 0 ||
                             text[pos - 1] == '-'))) {
                ++pos;
                continue;
            }
            auto value = pos + header.size();
            while (value < text.size() && text[value] == ' ') {
                ++value;
            }
            auto end = text.find_first_of("\r\n", value);
            if (end == std::string::npos) {
                end = text.size();
            }
            if (end > value) {
                text.replace(value, end - value, redacted);
            }
            pos = value + redacted.size();
        }
    }
}

void redact_key_values(std::string& text) {
    static constexpr std::array<std::string_view, 5> suffixes = {
        "password", "secret", "token", "signature", "credential"};
    for (auto eq = text.find('='); eq != std::string::npos; eq = text.find('=', eq + 1)) {
        auto key_start = eq;
        while (key_start > 0 &&
               (std::isalnum(static_cast<unsigned char>(text[key_start - 1])) != 0 ||
                text[key_start - 1] == '_' || text[key_start - 1] == '-')) {
            --key_start;
        }
        const std::string_view key = std::string_view(text).substr(key_start, eq - key_start);
        const bool secret_key = std::any_of(
            suffixes.begin(), suffixes.end(), [&](auto suffix) { return iends_with(key, suffix); });
        if (!secret_key) {
            continue;
        }
        auto start = eq + 1;
        auto end = start;
        if (start < text.size() && (text[start] == '"' || text[start] == '\'')) {
            // A quoted value runs to its closing quote, spaces included.
            const char quote = text[start];
            ++start;
            end = text.find(quote, start);
            if (end == std::string::npos) {
                end = text.size();
            }
        } else {
            while (end < text.size() && text[end] != '&' && text[end] != '"' && text[end] != '\'' &&
                   std::isspace(static_cast<unsigned char>(text[end])) == 0) {
                ++end;
            }
        }
        if (end > start && std::string_view(text).substr(start, end - start) != redacted) {
            text.replace(start, end - start, redacted);
        }
    }
}

} // namespace

std::string_view to_string(Level level) noexcept {
    switch (level) {
    case Level::Trace:
        return "trace";
    case Level::Debug:
        return "debug";
    case Level::Info:
        return "info";
    case Level::Warn:
        return "warn";
    case Level::Error:
        return "error";
    case Level::Off:
        return "off";
    }
    return "off";
}

Result<Level> parse_level(std::string_view name) {
    for (const Level candidate :
         {Level::Trace, Level::Debug, Level::Info, Level::Warn, Level::Error, Level::Off}) {
        if (ascii_iequals(name, to_string(candidate))) {
            return candidate;
        }
    }
    if (ascii_iequals(name, "warning")) {
        return Level::Warn;
    }
    return fail(
        ErrorCode::InvalidArgument,
        fmt::format("log level '{}': expected one of trace, debug, info, warn, error, off", name));
}

void set_level(Level new_level) noexcept {
    g_level.store(new_level, std::memory_order_relaxed);
}

Level level() noexcept {
    return g_level.load(std::memory_order_relaxed);
}

bool add_secret(std::string_view secret) {
    if (secret.size() < min_secret_length) {
        return false;
    }
    auto& s = state();
    const std::unique_lock lock(s.mutex);
    if (std::find(s.secrets.begin(), s.secrets.end(), secret) == s.secrets.end()) {
        s.secrets.emplace_back(secret);
        std::stable_sort(s.secrets.begin(), s.secrets.end(), [](const auto& a, const auto& b) {
            return a.size() > b.size();
        });
    }
    return true;
}

void clear_secrets() {
    auto& s = state();
    const std::unique_lock lock(s.mutex);
    s.secrets.clear();
}

std::string redact(std::string_view message) {
    std::string text(message);
    {
        auto& s = state();
        const std::shared_lock lock(s.mutex);
        replace_secrets(text, s.secrets);
    }
    redact_url_userinfo(text);
    redact_headers(text);
    redact_key_values(text);
    return text;
}

void set_sink(Sink sink) {
    auto& s = state();
    const std::unique_lock lock(s.mutex);
    s.sink = std::move(sink);
}

void write(Level message_level, std::string_view message) {
    if (message_level == Level::Off || message_level < level()) {
        return;
    }
    const std::string clean = redact(message);
    Sink sink;
    {
        auto& s = state();
        const std::shared_lock lock(s.mutex);
        sink = s.sink;
    }
    if (sink) {
        sink(message_level, clean);
    } else {
        default_logger()->log(to_spdlog(message_level), "{}", clean);
    }
}

} // namespace ci::log
