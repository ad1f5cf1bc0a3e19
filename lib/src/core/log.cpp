#include "ci/core/log.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <iterator>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "core/ascii.h"
#include "core/utf8.h"

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

namespace {

// Code points written as \u{NNNN}: C1 controls, and the formatting characters that reorder or
// hide text on a terminal (line and paragraph separators, bidirectional overrides and isolates).
bool is_hidden_code_point(std::uint32_t c) noexcept {
    return (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f || c == 0x061c;
}

std::uint32_t decode_code_point(std::string_view sequence) noexcept {
    const auto byte = [&](std::size_t k) {
        return static_cast<std::uint32_t>(static_cast<unsigned char>(sequence[k]));
    };
    switch (sequence.size()) {
    case 2:
        return ((byte(0) & 0x1fU) << 6U) | (byte(1) & 0x3fU);
    case 3:
        return ((byte(0) & 0x0fU) << 12U) | ((byte(1) & 0x3fU) << 6U) | (byte(2) & 0x3fU);
    case 4:
        return ((byte(0) & 0x07U) << 18U) | ((byte(1) & 0x3fU) << 12U) | ((byte(2) & 0x3fU) << 6U) |
               (byte(3) & 0x3fU);
    default:
        return byte(0);
    }
}

} // namespace

std::string field(std::string_view value, std::size_t max_bytes) {
    std::string out;
    out.reserve(std::min(value.size(), max_bytes) + 16);
    std::size_t i = 0;
    while (i < value.size()) {
        const auto c = static_cast<unsigned char>(value[i]);
        const std::size_t length = utf8_sequence_length(value, i);
        const std::size_t taken = length == 0 ? 1 : length;
        if (i + taken > max_bytes) {
            break;
        }
        if (length > 1) {
            const auto sequence = value.substr(i, length);
            const auto code_point = decode_code_point(sequence);
            if (is_hidden_code_point(code_point)) {
                fmt::format_to(std::back_inserter(out), "\\u{{{:04x}}}", code_point);
            } else {
                out.append(sequence);
            }
        } else if (c == '\\' || c == '"') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (length == 0 || c < 0x20 || c == 0x7f) {
            // An invalid UTF-8 byte (length 0: 0x80 and above) or a control character.
            fmt::format_to(std::back_inserter(out), "\\x{:02x}", c);
        } else {
            out += static_cast<char>(c);
        }
        i += taken;
    }
    if (i < value.size()) {
        fmt::format_to(std::back_inserter(out), "...[{} more bytes]", value.size() - i);
    }
    return out;
}

std::uint64_t Throttle::count(Clock::time_point now) {
    const std::lock_guard lock(mutex_);
    ++held_;
    if (now < next_line_) {
        return 0;
    }
    next_line_ = now + interval_;
    return std::exchange(held_, 0);
}

StreamRedactor::StreamRedactor(std::vector<std::string> secrets) {
    for (auto& secret : secrets) {
        if (secret.size() >= min_secret_length) {
            secrets_.push_back(std::move(secret));
        }
    }
    std::ranges::sort(secrets_, std::greater{}, &std::string::size);
}

std::string StreamRedactor::feed(std::string_view chunk) {
    std::string text = std::move(pending_);
    pending_.clear();
    text.append(chunk);
    return scan(text, false);
}

std::string StreamRedactor::finish() {
    std::string text = std::move(pending_);
    pending_.clear();
    return scan(text, true);
}

std::string StreamRedactor::scan(std::string_view text, bool final) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        const std::string_view rest = text.substr(at);
        bool replaced = false;
        for (const auto& secret : secrets_) {
            if (rest.starts_with(secret)) {
                out += redacted;
                at += secret.size();
                replaced = true;
                break;
            }
            if (!final && rest.size() < secret.size() &&
                std::string_view(secret).starts_with(rest)) {
                pending_ = rest; // may be the start of this secret: wait for more
                return out;
            }
        }
        if (!replaced) {
            out += text[at];
            ++at;
        }
    }
    return out;
}

} // namespace ci::log
