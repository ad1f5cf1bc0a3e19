#pragma once

/// \file
/// Logging that never prints a secret.
///
/// Every message passes through redact() before it reaches a sink:
///  1. each registered secret (add_secret) is replaced by "[redacted]" wherever it occurs;
///  2. the password or token in a URL's user-info (`https://user:TOKEN@host`,
///     `https://TOKEN@host`) is replaced;
///  3. the value of an `Authorization:` or `X-Amz-Security-Token:` header, to the end of the line,
///     is replaced;
///  4. the value of a `key=value` pair whose key ends in password, secret, token, signature or
///     credential (case-insensitive; `X-Amz-Signature=…`, `GITHUB_TOKEN=…`) is replaced up to the
///     next `&`, white space or quote.
/// The default sink writes one line per message to standard error with a UTC timestamp.
/// All functions are thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <ci/core/error.h>

namespace ci::log {

/// Severity, least to most severe. Off disables logging.
enum class Level { Trace, Debug, Info, Warn, Error, Off };

/// "trace", "debug", "info", "warn", "error" or "off".
[[nodiscard]] std::string_view to_string(Level level) noexcept;

/// Parses a level name as printed by to_string (case-insensitive; "warning" is accepted).
/// Fails with ErrorCode::InvalidArgument naming the accepted names.
[[nodiscard]] Result<Level> parse_level(std::string_view name);

/// Messages below `level` are dropped. The default is Info.
void set_level(Level level) noexcept;
[[nodiscard]] Level level() noexcept;

/// The shortest secret add_secret registers: shorter values would redact ordinary words.
inline constexpr std::size_t min_secret_length = 4;

/// Registers a secret to redact from every later message. Returns false, and registers nothing,
/// for a value shorter than min_secret_length. Registering the same value twice is harmless.
bool add_secret(std::string_view secret);

/// Forgets every registered secret (for tests and for a master that reloads its config).
void clear_secrets();

/// `message` with every secret and secret-shaped value replaced by "[redacted]" (rules above).
[[nodiscard]] std::string redact(std::string_view message);

/// Replaces known secret values by "[redacted]" in a stream that arrives in chunks (a build
/// step's log), also where a secret is split across chunks: the end of a chunk that could be
/// the start of a secret is held back until the next chunk (or finish) shows whether it is.
/// Values shorter than min_secret_length are ignored; where two secrets could match at one
/// place the longer wins. Not thread-safe: one per stream.
class StreamRedactor {
public:
    explicit StreamRedactor(std::vector<std::string> secrets);
    /// The text of `chunk` (after what was held back) that is safe to pass on now.
    [[nodiscard]] std::string feed(std::string_view chunk);
    /// What is still held back, at the end of the stream; the redactor is then empty again.
    [[nodiscard]] std::string finish();

private:
    // Redacts `text`; unless `final`, holds back from the first place a secret may start but
    // not end.
    std::string scan(std::string_view text, bool final);
    std::vector<std::string> secrets_; // longest first
    std::string pending_;
};

/// Receives each message that passed the level filter, already redacted.
using Sink = std::function<void(Level, std::string_view)>;

/// Replaces the output; an empty Sink restores the default standard-error sink.
void set_sink(Sink sink);

/// Redacts `message` and writes it if `level` passes the filter.
void write(Level level, std::string_view message);

/// How many bytes of a value field() keeps by default.
inline constexpr std::size_t default_field_bytes = 200;

/// `value` (text from outside: a worker's name, a request's path) made safe to put in one log
/// line: at most `max_bytes` of it are kept (never splitting a UTF-8 character), followed by
/// "...[N more bytes]" when it was longer; `\` and `"` are escaped with a backslash, `\n`, `\r`
/// and `\t` written so, every other control character (C0, DEL, C1) and bidirectional
/// formatting character as `\xNN` or `\u{NNNN}`, and each byte of an invalid UTF-8 sequence as
/// `\xNN`. So a value can neither forge a line (a newline, an ANSI escape, a quote that ends the
/// field early) nor make one a megabyte long. Put it between quotes in the message.
[[nodiscard]] std::string field(std::string_view value,
                                std::size_t max_bytes = default_field_bytes);

/// Decides when an event that may repeat fast (a wrong password, a refused connection) is
/// logged: the first at once, then at most one line per `interval`, which reports how many
/// happened since the last line. Events after the last line are reported with the next one, if
/// any. Thread-safe.
class Throttle {
public:
    using Clock = std::chrono::steady_clock;

    explicit Throttle(Clock::duration interval) : interval_(interval) {}

    /// Counts one event at `now`. Returns the number of events to report in a line now (this
    /// one and those held back since the last line), or 0 when it is not time for a line.
    [[nodiscard]] std::uint64_t count(Clock::time_point now = Clock::now());

private:
    const Clock::duration interval_;
    std::mutex mutex_;
    Clock::time_point next_line_{};
    std::uint64_t held_ = 0;
};

/// fmt-style helpers: `ci::log::info("started {} on port {}", name, port)`.
template <class... Args> void trace(fmt::format_string<Args...> format, Args&&... args) {
    if (level() <= Level::Trace) {
        write(Level::Trace, fmt::format(format, std::forward<Args>(args)...));
    }
}
template <class... Args> void debug(fmt::format_string<Args...> format, Args&&... args) {
    if (level() <= Level::Debug) {
        write(Level::Debug, fmt::format(format, std::forward<Args>(args)...));
    }
}
template <class... Args> void info(fmt::format_string<Args...> format, Args&&... args) {
    if (level() <= Level::Info) {
        write(Level::Info, fmt::format(format, std::forward<Args>(args)...));
    }
}
template <class... Args> void warn(fmt::format_string<Args...> format, Args&&... args) {
    if (level() <= Level::Warn) {
        write(Level::Warn, fmt::format(format, std::forward<Args>(args)...));
    }
}
template <class... Args> void error(fmt::format_string<Args...> format, Args&&... args) {
    if (level() <= Level::Error) {
        write(Level::Error, fmt::format(format, std::forward<Args>(args)...));
    }
}

} // namespace ci::log
