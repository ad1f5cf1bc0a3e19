#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <ci/core/log.h>

#include "support/require_ok.h"

namespace {

// Captures what reaches the sink and restores the default sink, level and secrets afterwards.
class Capture {
public:
    Capture() {
        ci::log::set_level(ci::log::Level::Trace);
        ci::log::set_sink([this](ci::log::Level level, std::string_view message) {
            const std::lock_guard lock(mutex_);
            lines_.emplace_back(level, std::string(message));
        });
    }
    ~Capture() {
        ci::log::set_sink({});
        ci::log::clear_secrets();
        ci::log::set_level(ci::log::Level::Warn);
    }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

    std::vector<std::pair<ci::log::Level, std::string>> lines() {
        const std::lock_guard lock(mutex_);
        return lines_;
    }

private:
    std::mutex mutex_;
    std::vector<std::pair<ci::log::Level, std::string>> lines_;
};

} // namespace

TEST_CASE("log: registered secrets never reach the sink") {
    Capture capture;
    CHECK(ci::log::add_secret("hunter2-secret"));
    ci::log::info("connecting with password {} to {}", "hunter2-secret", "db");
    const auto lines = capture.lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].first == ci::log::Level::Info);
    CHECK(lines[0].second == "connecting with password [redacted] to db");
}

TEST_CASE("log: a secret that contains another is redacted whole") {
    Capture capture;
    CHECK(ci::log::add_secret("abcd"));
    CHECK(ci::log::add_secret("xxabcdyy"));
    CHECK(ci::log::redact("k=xxabcdyy and abcd") == "k=[redacted] and [redacted]");
}

TEST_CASE("log: very short secrets are refused instead of redacting ordinary words") {
    Capture capture;
    CHECK_FALSE(ci::log::add_secret("a"));
    CHECK_FALSE(ci::log::add_secret(""));
    CHECK(ci::log::redact("a banana") == "a banana");
}

TEST_CASE("log: secret-shaped values are redacted without registration") {
    Capture capture;
    SUBCASE("token in URL user-info") {
        CHECK(ci::log::redact("clone https://x-access-token:ghp_abc123@github.com/o/r.git") ==
              "clone https://x-access-token:[redacted]@github.com/o/r.git");
        CHECK(ci::log::redact("fetch https://ghp_abc123@github.com/o/r") ==
              "fetch https://[redacted]@github.com/o/r");
        CHECK(ci::log::redact("see https://github.com/o/r and user@example.org") ==
              "see https://github.com/o/r and user@example.org");
    }
    SUBCASE("authorization headers") {
        CHECK(ci::log::redact("Authorization: AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=ff\n"
                              "Host: s3") == "Authorization: [redacted]\nHost: s3");
        CHECK(ci::log::redact("x-amz-security-token: FQoGZXIvYXdzE") ==
              "x-amz-security-token: [redacted]");
    }
    SUBCASE("secret query and environment values") {
        CHECK(ci::log::redact("GET /?X-Amz-Signature=deadbeef&X-Amz-Date=20150830T123600Z") ==
              "GET /?X-Amz-Signature=[redacted]&X-Amz-Date=20150830T123600Z");
        CHECK(ci::log::redact("env GITHUB_TOKEN=ghp_x1 CI=true") ==
              "env GITHUB_TOKEN=[redacted] CI=true");
        CHECK(ci::log::redact("worker_password='p4ss'") == "worker_password='[redacted]'");
    }
    SUBCASE("config errors keep their words") {
        const std::string message = "config.yml:3:5: github.token: expected a string";
        CHECK(ci::log::redact(message) == message);
    }
}

TEST_CASE("log: level filter") {
    Capture capture;
    ci::log::set_level(ci::log::Level::Warn);
    ci::log::info("dropped");
    ci::log::debug("dropped");
    ci::log::warn("kept {}", 1);
    ci::log::error("kept {}", 2);
    const auto lines = capture.lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].second == "kept 1");
    CHECK(lines[1].first == ci::log::Level::Error);
}

TEST_CASE("log: parse_level") {
    CHECK(ci::log::parse_level("INFO") == ci::log::Level::Info);
    CHECK(ci::log::parse_level("warning") == ci::log::Level::Warn);
    auto bad = ci::log::parse_level("loud");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(bad.error().message.find("'loud'") != std::string::npos);
}

TEST_CASE("log: concurrent writers and secret registration") {
    Capture capture;
    std::vector<std::thread> threads;
    threads.reserve(4);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([t] {
            for (int i = 0; i < 200; ++i) {
                ci::log::add_secret("secret-" + std::to_string(t));
                ci::log::info("thread {} says secret-{}", t, t);
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    const auto lines = capture.lines();
    CHECK(lines.size() == 800);
    for (const auto& [level, line] : lines) {
        CHECK(line.find("secret-") == std::string::npos);
    }
}

TEST_CASE("log: field() escapes what could forge a line and cuts long values") {
    using ci::log::field;
    CHECK(field("worker/1") == "worker/1");
    CHECK(field("caf\xc3\xa9") == "caf\xc3\xa9"); // valid UTF-8 stays readable
    CHECK(field("a\nb\r\tc") == "a\\nb\\r\\tc");
    CHECK(field("\x1b[31mred") == "\\x1b[31mred"); // an ANSI escape cannot colour the terminal
    CHECK(field("say \"hi\" \\o/") == "say \\\"hi\\\" \\\\o/");
    CHECK(field(std::string("nul\0x\x7f", 6)) == "nul\\x00x\\x7f");
    CHECK(field("bad \xff\xfe \xc3(") == "bad \\xff\\xfe \\xc3(");
    // C1 NEL, and U+202E (right-to-left override), spelled byte by byte: as a literal it would
    // be the very trick it tests.
    const std::string hidden = {'\xc2', '\x85', ' ', '\xe2', '\x80', '\xae'};
    CHECK(field(hidden) == "\\u{0085} \\u{202e}");
    SUBCASE("a 4 MiB value keeps its first bytes and says how many were cut") {
        const std::string huge(std::size_t{4} * 1024 * 1024, 'x');
        const auto cut = field(huge);
        CHECK(cut == std::string(ci::log::default_field_bytes, 'x') + "...[4194104 more bytes]");
        CHECK(field(huge, 3) == "xxx...[4194301 more bytes]");
    }
    SUBCASE("a cut never splits a character") {
        CHECK(field("ab\xc3\xa9", 3) == "ab...[2 more bytes]");
        CHECK(field("ab\xc3\xa9", 4) == "ab\xc3\xa9");
    }
    SUBCASE("every byte value gives a line of printable text or valid UTF-8") {
        std::string all;
        for (int c = 0; c < 256; ++c) {
            all += static_cast<char>(c);
        }
        const auto escaped = field(all, all.size());
        for (const char c : escaped) {
            const auto byte = static_cast<unsigned char>(c);
            CHECK((byte >= 0x20 && byte < 0x7f));
        }
    }
}

TEST_CASE("log: Throttle lets one line per interval through, with the count held back") {
    ci::log::Throttle throttle(std::chrono::seconds(10));
    const auto t0 = ci::log::Throttle::Clock::time_point() + std::chrono::hours(1);
    CHECK(throttle.count(t0) == 1); // the first at once
    for (int i = 0; i < 999; ++i) {
        CHECK(throttle.count(t0 + std::chrono::milliseconds(i)) == 0);
    }
    CHECK(throttle.count(t0 + std::chrono::seconds(10)) == 1000); // 999 held back and this one
    CHECK(throttle.count(t0 + std::chrono::seconds(11)) == 0);
    CHECK(throttle.count(t0 + std::chrono::seconds(30)) == 2);
}

// Issue 15: known secrets out of a build log that arrives in chunks, split anywhere.
TEST_CASE("log: StreamRedactor redacts secrets split across chunks") {
    const std::string text = "start s3cret-value middle tok-12345 and s3cret-value end";
    const std::string expected = "start [redacted] middle [redacted] and [redacted] end";
    // Every way of cutting the text in two, and in one-byte chunks.
    for (std::size_t cut = 0; cut <= text.size(); ++cut) {
        ci::log::StreamRedactor redactor({"s3cret-value", "tok-12345", "ab"});
        std::string out = redactor.feed(std::string_view(text).substr(0, cut));
        out += redactor.feed(std::string_view(text).substr(cut));
        out += redactor.finish();
        CHECK_MESSAGE(out == expected, "cut at ", cut);
    }
    ci::log::StreamRedactor bytes({"s3cret-value", "tok-12345"});
    std::string out;
    for (const char c : text) {
        out += bytes.feed(std::string_view(&c, 1));
    }
    out += bytes.finish();
    CHECK(out == expected);

    // A held-back start that turns out not to be a secret comes out whole, in order.
    ci::log::StreamRedactor partial({"s3cret-value"});
    CHECK(partial.feed("a s3cr") == "a ");
    CHECK(partial.feed("x") == "s3crx");
    CHECK(partial.feed("end s3c") == "end ");
    CHECK(partial.finish() == "s3c");
    // The longer of two overlapping secrets wins; the shorter still matches on its own.
    ci::log::StreamRedactor overlap({"abcd", "abcdef"});
    std::string both = overlap.feed("abcdef abcdx abcd");
    both += overlap.finish();
    CHECK(both == "[redacted] [redacted]x [redacted]");
    // Values shorter than min_secret_length are not secrets: "ab" above redacted nothing.
    ci::log::StreamRedactor none({"ab", ""});
    CHECK(none.feed("ab abc") == "ab abc");
}
