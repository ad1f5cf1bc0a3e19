#pragma once

/// \file
/// Reporters: what tells the world about builds (GitHub commit statuses, chat, a program's own
/// service). The master calls each reporter it was given (MasterOptions::reporters, and the
/// GitHub reporter when `github.report_status` is true) at three moments of every build
/// request: requested, started, finished. A reporter decides what to send and sends it on a
/// thread of its own; the master never waits for a network.
///
/// A reporter whose messages must survive a master killed at any moment (GitHub's, Zulip's)
/// gives them to the master through outbox(): the master stores them in the same transaction
/// that records the event (the request queued, the build started or ended, ...), in the
/// store's outbox (store::Store::queued_reports), and the reporter's thread sends them from
/// there, marking each once sent. After a restart every message of every recorded event is
/// there, none is missing and none is added twice; a message is sent again only when the
/// master died between the service's answer and its mark (at most the one in flight).

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ci/build/test_results.h>
#include <ci/core/build_result.h>
#include <ci/store/store.h>

namespace ci::report {

/// The moment of a build request's life a report is about.
enum class BuildEvent {
    Requested, ///< a build request was stored (a push, a force, a periodic run)
    Started,   ///< a worker started a build of it
    Finished,  ///< that build ended (`result`; Retry: its request is queued again)
    Cancelled, ///< the request was cancelled before a build of it started (`result`: Cancelled)
};

/// What a reporter is told. Plain values, copied: a reporter may keep it.
struct BuildReport {
    BuildEvent event = BuildEvent::Requested;
    std::int64_t request_id = 0;
    std::int64_t build_id = 0; ///< 0 for Requested and Cancelled
    std::string builder;
    std::string repository; ///< the config's name of the repository (`repositories.<name>`)
    std::string branch;
    /// The commit the report is about: the branch tip that was pushed (or forced), never the
    /// merge commit a merge-forward build tested. Empty when it is not known yet (a build
    /// forced without a revision, before its checkout).
    std::string revision;
    std::optional<BuildResult> result;             ///< Finished and Cancelled only
    std::string url;                               ///< the build's page; empty for Requested
    std::map<std::string, std::string> properties; ///< the request's properties (force, ...)
    /// Finished only: what its steps' `test_results` read (JUnit), added up over its steps;
    /// nullopt when no step read any.
    std::optional<build::TestResults> tests;
    std::chrono::system_clock::time_point at{}; ///< when it happened
    friend bool operator==(const BuildReport&, const BuildReport&) = default;
};

/// Something an operator should hear of that is no build's result.
struct OpsEvent {
    enum class Kind {
        ReporterGaveUp,        ///< a reporter dropped a message it could not send in time
        StoreDegraded,         ///< the master's writes to its store fail
        InstanceNotTerminated, ///< a latent worker's instance did not terminate
        /// an EC2 pool's trouble: a launch that failed, an instance that never connected or was
        /// lost, an unknown tagged instance, a termination not seen
        InstanceProblem,
    };
    Kind kind = Kind::ReporterGaveUp;
    std::string source; ///< who noticed: a reporter's name ("github"), "store", ...
    std::string text;   ///< one line for people; never a secret
};

/// Where operational events go (the master's Reports, which passes them to every reporter).
/// May be called from any thread; must not block.
using OpsHook = std::function<void(const OpsEvent&)>;

/// A destination for reports. Implementations must be thread-safe: report() is called from
/// several of the master's threads. For one request, Requested comes before Started, and
/// Started before Finished; a request cancelled while pending gets Cancelled instead of both.
class Reporter {
public:
    virtual ~Reporter() = default;
    /// A short name for logs ("github").
    [[nodiscard]] virtual std::string name() const = 0;
    /// The messages `report` adds to this reporter's outbox: the master stores them in the
    /// transaction that records the event, then calls report(). Called on the thread that
    /// records the event, maybe more than once for one event (a write that failed is tried
    /// again): must be quick, must not throw, and must depend on `report` alone (no I/O, no
    /// state it changes). By default none: the reporter keeps what report() gives it in
    /// memory, and a master killed before the reporter stored or sent it loses it.
    [[nodiscard]] virtual std::vector<store::OutboxMessage> outbox(const BuildReport& /*report*/) {
        return {};
    }
    /// Takes one report, once the event (and what outbox() gave for it) is stored. Must return
    /// quickly (queue it; no network or disk wait here) and must not throw.
    virtual void report(const BuildReport& report) = 0;
    /// Takes an operational event (a reporter gave up, the store is degraded). The same rules
    /// as report(); by default ignored.
    virtual void operational(const OpsEvent& /*event*/) {}
    /// Called once when the master shuts down, after its last report(): stop the reporter's
    /// threads, keeping (storing) what was not sent when it can. Must be idempotent.
    virtual void stop() = 0;
};

} // namespace ci::report
