#pragma once

/// \file
/// GitHub commit statuses (`POST /repos/OWNER/REPO/statuses/SHA`) for builds: what to send for
/// which report (pure functions), and the reporter that sends them from a stored queue.
///
/// Rules (status_for):
///  1. one context per builder: `context_prefix` + the builder's name without `strip_prefix`;
///  2. only builders matching one of `builders` (globs; empty: all), of a repository with an
///     OWNER/REPO, with a known revision (the pushed branch tip, never the merge commit);
///  3. Requested: `pending`; Started: `pending` with the build's URL; Finished: `success`,
///     `failure`, or `error` (exception, cancelled); a build that ended `retry` sends nothing
///     (the status stays pending: its request runs again);
///  4. a builder of `failing_builders` sends nothing unless its request has the property
///     `report_expected_failures` set to `true`;
///  5. a finished build whose steps read test results (BuildReport::tests) says how many in its
///     description: "Build failed: 3 of 120 tests failed (app.test_a, app.test_b, …)" (failures
///     and errors count as failed; as many whole names as fit, "…" when some are left out),
///     "Build succeeded: 118 tests passed, 2 skipped"; within max_description characters.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/report/delivery.h>
#include <ci/report/reporter.h>
#include <ci/store/store.h>

namespace ci::report::github {

/// A commit status's state, as GitHub names them.
enum class State { Pending, Success, Failure, Error };

/// "pending", "success", "failure" or "error".
[[nodiscard]] std::string_view to_string(State state) noexcept;

/// GitHub's limit on a status's description.
inline constexpr std::size_t max_description = 140;

/// What the reporter needs to know; settings_from() takes it from a config.
struct Settings {
    std::string api_url = "https://api.github.com";  ///< `github.api_url`
    std::string token;                               ///< `github.token` (a secret)
    std::string context_prefix = "libci/";           ///< `github.context_prefix`
    std::string strip_prefix;                        ///< `github.strip_prefix`
    std::vector<std::string> builders;               ///< `github.builders`: globs; empty: all
    std::vector<std::string> failing_builders;       ///< `failing_builders`
    std::map<std::string, std::string> repositories; ///< config repository name -> OWNER/REPO
    std::chrono::seconds give_up{6 * 3600};          ///< `github.give_up`
    /// Backoff after a 5xx or a network error: doubling from first_retry up to max_retry.
    std::chrono::milliseconds first_retry{1000};
    std::chrono::milliseconds max_retry{60000};
};

/// The settings a config asks for (repositories without an OWNER/REPO are left out).
[[nodiscard]] Settings settings_from(const config::Config& config);

/// One status to send.
struct CommitStatus {
    std::string repository; ///< OWNER/REPO
    std::string sha;
    State state = State::Pending;
    std::string target_url; ///< empty: none
    std::string description;
    std::string context;
    friend bool operator==(const CommitStatus&, const CommitStatus&) = default;
};

/// The context of `builder`'s statuses (rule 1).
[[nodiscard]] std::string context_for(std::string_view builder, const Settings& settings);

/// True when `builder` reports statuses (the `builders` globs of rule 2).
[[nodiscard]] bool reports_builder(std::string_view builder, const Settings& settings);

/// The status `report` calls for, or nullopt (rules 2-4).
[[nodiscard]] std::optional<CommitStatus> status_for(const BuildReport& report,
                                                     const Settings& settings);

/// The request that sends `status` (Authorization: token; JSON body). Fails with
/// InvalidArgument when `settings.api_url` is not an http(s) URL.
[[nodiscard]] Result<http::Request> status_request(const CommitStatus& status,
                                                   const Settings& settings);

/// A status as stored in the outbox, and back. parse_status fails with InvalidArgument.
[[nodiscard]] std::string to_json(const CommitStatus& status);
[[nodiscard]] Result<CommitStatus> parse_status(std::string_view json);

/// What to do after GitHub answered (shared with the other reporters).
using Verdict = report::Verdict;

/// Judges a response: 2xx sent; 403 or 429 with `Retry-After` (seconds) or with
/// `x-ratelimit-remaining: 0` (until `x-ratelimit-reset`), or whose message names a rate
/// limit, retry after that (60 s when nothing says); 5xx retry; anything else dropped.
[[nodiscard]] Verdict judge(const http::Response& response, WallTime now);

/// Starts the GitHub reporter: a queue on its own thread. Its outbox() gives the status of a
/// report (status_for) as a message of the outbox queue "github", which the master stores with
/// the event (Reporter::outbox); report() then sends what is stored, from `outbox` (a store
/// connection of the reporter's own, to the master's database). Each is marked once GitHub
/// accepted or refused it, so a restart neither loses nor repeats it; statuses stored by an
/// earlier run are sent first, in order. Statuses are sent one at a time, in order; one that fails
/// is retried (rules of judge(), backoff of Settings) before any later one, and dropped with an
/// error in the log once `give_up` has passed since it was queued (`ops` is told). The token never
/// appears in a log line. `outbox` (its own connection is best), `client` and `clock` are the
/// reporter's; `clock` must outlive it. Fails with the outbox's error.
[[nodiscard]] Result<std::shared_ptr<Reporter>> start_reporter(Settings settings,
                                                               std::unique_ptr<store::Store> outbox,
                                                               std::unique_ptr<http::Client> client,
                                                               const Clock& clock,
                                                               OpsHook ops = {});

} // namespace ci::report::github
