#pragma once

/// \file
/// Zulip chat messages for builds: one summary per push, sent when the last of its builds
/// ends, and operational errors. What to send (pure functions) and the reporter that sends it
/// from the queue the GitHub reporter uses too (stored first, in order, retried, given up).
///
/// Rules:
///  1. A push is the builds requested for one (repository, branch, revision): the requests of
///     a change, however many builders they are for. Its summary goes to `stream` with the
///     topic `REPOSITORY : BRANCH` once every one of them ended (a build that ended `retry`
///     has not: its request runs again). A request collapsed into a newer one (of the same
///     builder and branch) ends with the build that built it.
///  2. The summary lists each builder's result, duration, link and, when its steps read test
///     results (`test_results`), their counts ("tests: 118 passed, 1 failed, 2 skipped, 0
///     errors"); for a failure (or an exception) the failed step, its log's last lines
///     (`tail_lines`) and the failed tests (its JUnit results' names, else failed_tests()).
///  3. A push of the repository's default branch with a failure of a builder outside
///     `failing_builders` also goes to `critical_stream`, when set.
///  4. Operational events (OpsEvent) go to `ops_stream`, when set, with the topic `libci`.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/build_result.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/report/delivery.h>
#include <ci/report/reporter.h>
#include <ci/store/store.h>

namespace ci::report::zulip {

/// Zulip's limits: a topic's and a message's length (characters).
inline constexpr std::size_t max_topic = 60;
inline constexpr std::size_t max_content = 10000;

/// What the reporter needs to know; settings_from() takes it from a config.
struct Settings {
    std::string site = "https://api.zulip.com";          ///< `zulip.site`
    std::string email;                                   ///< `zulip.user`: the bot's e-mail address
    std::string api_key;                                 ///< `zulip.password` (a secret)
    std::string stream;                                  ///< `zulip.stream`
    std::optional<std::string> critical_stream;          ///< `zulip.critical_stream`
    std::optional<std::string> ops_stream;               ///< `zulip.ops_stream`
    std::vector<std::string> failing_builders;           ///< `failing_builders`
    std::map<std::string, std::string> default_branches; ///< repository -> its default branch
    std::chrono::seconds give_up{6 * 3600};              ///< `zulip.give_up`
    std::size_t tail_lines = 20; ///< the failed step's last lines in a summary
    std::size_t max_tests = 30;  ///< failed test names listed (then "and N more")
    /// Backoff after a 5xx or a network error: doubling from first_retry up to max_retry.
    std::chrono::milliseconds first_retry{1000};
    std::chrono::milliseconds max_retry{60000};
    /// How long the reporter waits for a finished build's end (and so its whole log) to be in
    /// the store before it summarises it without its log.
    std::chrono::milliseconds log_wait{10000};
};

/// The settings `config.zulip` asks for (`config.zulip` must be set).
[[nodiscard]] Settings settings_from(const config::Config& config);

/// One build of a push, as its summary shows it.
struct BuildLine {
    std::int64_t request_id = 0;
    std::int64_t build_id = 0; ///< 0 until it started
    std::string builder;
    std::optional<BuildResult> result; ///< nullopt: not ended
    std::chrono::seconds duration{0};
    std::string url;
    std::string failed_step;               ///< failures: the step that failed
    std::string log_tail;                  ///< failures: that step's last lines
    std::vector<std::string> failed_tests; ///< failures: from failed_tests()
    /// A request collapsed into a newer one: the request whose build built it (0: none).
    std::int64_t built_by = 0;
    /// The counts of its steps' test results (BuildReport::tests; names in failed_tests).
    std::optional<build::TestResults> tests;
    friend bool operator==(const BuildLine&, const BuildLine&) = default;
};

/// The builds requested for one push (rule 1).
struct Push {
    std::int64_t id = 0; ///< its first request's id
    std::string repository;
    std::string branch;
    std::string revision;
    std::vector<BuildLine> builds;
    /// True when every build has a result.
    [[nodiscard]] bool ended() const;
    friend bool operator==(const Push&, const Push&) = default;
};

/// One message to send.
struct Message {
    std::string stream;
    std::string topic;
    std::string content;
    friend bool operator==(const Message&, const Message&) = default;
};

/// The names of the failed tests a log shows, in order, each once, at most `max`. The rule:
///  - pytest: a line `FAILED NODEID` or `ERROR NODEID` whose node id holds `::` (the short
///    test summary, e.g. `FAILED tests/test_a.py::test_b - assert 1 == 2`): NODEID;
///  - Twisted trial: in a block that starts with a line `[FAIL]` or `[ERROR]` and ends at the
///    next line of `=` or `-` (trial's separators), the lines after the block's last empty
///    line that are dotted Python names (`flocker.test.test_x.Tests.test_y`).
[[nodiscard]] std::vector<std::string> failed_tests(std::string_view log, std::size_t max);

/// The last `lines` lines of `text` (without a trailing newline; carriage returns dropped),
/// at most `max_bytes` of them (cut at a line's start where it can).
[[nodiscard]] std::string
last_lines(std::string_view text, std::size_t lines, std::size_t max_bytes = 3000);

/// `REPOSITORY : BRANCH`, cut to max_topic characters.
[[nodiscard]] std::string topic_for(const Push& push);

/// The summary of an ended push (rule 2), in Zulip's Markdown, at most max_content long.
[[nodiscard]] std::string summary(const Push& push, const Settings& settings);

/// The messages an ended push calls for (rules 1 and 3): to `stream`, and to `critical_stream`.
[[nodiscard]] std::vector<Message> messages_for(const Push& push, const Settings& settings);

/// The message an operational event calls for (rule 4), or nullopt without `ops_stream`.
[[nodiscard]] std::optional<Message> ops_message(const OpsEvent& event, const Settings& settings);

/// The request that sends `message`: POST SITE/api/v1/messages, HTTP basic with the bot's
/// e-mail and API key, a form body (`type=stream`, `to`, `topic`, `content`). Fails with
/// InvalidArgument when `settings.site` is not an http(s) URL.
[[nodiscard]] Result<http::Request> message_request(const Message& message,
                                                    const Settings& settings);

/// Judges Zulip's answer: 2xx sent; 429 retry after `Retry-After` (seconds; 60 when absent);
/// 5xx retry (backoff); anything else (400 no such stream, 401 bad key) dropped.
[[nodiscard]] Verdict judge(const http::Response& response);

/// Messages and pushes as stored in the outbox, and back. The parsers fail with
/// InvalidArgument.
[[nodiscard]] std::string to_json(const Message& message);
[[nodiscard]] Result<Message> parse_message(std::string_view json);
[[nodiscard]] std::string to_json(const Push& push);
[[nodiscard]] Result<Push> parse_push(std::string_view json);
/// A build report as the reporter keeps it in the outbox until it has handled it, and back
/// (`at` to the millisecond).
[[nodiscard]] std::string to_json(const BuildReport& report);
[[nodiscard]] Result<BuildReport> parse_report(std::string_view json);

/// Starts the Zulip reporter. Its outbox() gives each report (but a `retry` end, which ends
/// nothing) as a message of the outbox queue "zulip-events", which the master stores with the
/// event (Reporter::outbox). The reporter's thread takes those in order and, for each, in one
/// transaction: updates the pushes whose builds have not all ended (kept in the outbox as
/// "zulip-pushes", so that a restart finishes their summaries), queues the messages of the
/// pushes it ended (outbox queue "zulip") and marks the event done: each event counts once,
/// whenever the master is killed. The messages are sent as the GitHub reporter's statuses
/// are (github::start_reporter): in order from one thread, retried, dropped after `give_up`
/// (`ops` is told). A failed build's step and log are read from `outbox`
/// (the master's store; its own connection). The API key never appears in a log line.
/// `clock` must outlive the reporter. Fails with the outbox's error.
[[nodiscard]] Result<std::shared_ptr<Reporter>> start_reporter(Settings settings,
                                                               std::unique_ptr<store::Store> outbox,
                                                               std::unique_ptr<http::Client> client,
                                                               const Clock& clock,
                                                               OpsHook ops = {});

} // namespace ci::report::zulip
