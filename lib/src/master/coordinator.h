#pragma once

// What happens when workers come, go and report: the one place that updates the worker
// registry, the running builds, the locks, the metrics and the store together. It has no lock
// of its own; each component it uses owns its state, and the order of its calls keeps them
// consistent (a build ends exactly once: RunningBuilds::end decides who ends it).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/build_result.h>
#include <ci/core/clock.h>

#include "master/credentials.h"
#include "master/grid_cache.h"
#include "master/link.h"
#include "master/locks.h"
#include "master/log_redaction.h"
#include "master/metrics.h"
#include "master/protocol.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/running.h"
#include "master/store_writes.h"
#include "master/triggers.h"
#include "master/uploads.h"
#include "store/log_writer.h"

namespace ci::master {

/// What the worker server (and the local workers) report about their connections.
class WorkerEvents {
public:
    virtual ~WorkerEvents() = default;
    /// Checks a Hello; nullopt when refused.
    [[nodiscard]] virtual std::optional<Login>
    login(const std::string& name, const std::string& proof, const std::string& nonce) = 0;
    /// An authenticated worker is ready for builds.
    virtual void connected(const std::string& name,
                           const Login& login,
                           bool local,
                           std::shared_ptr<Link> link) = 0;
    /// A message from `name` over `link` (ignored unless `link` is its connection now).
    virtual void message(const std::string& name, const Link* link, protocol::Message message) = 0;
    /// `link` closed.
    virtual void lost(const std::string& name, const Link* link, const std::string& why) = 0;
};

class Coordinator final : public WorkerEvents {
public:
    struct Parts {
        const Clock& clock;
        Credentials& credentials;
        WorkerRegistry& workers;
        RunningBuilds& running;
        LockTable& locks;
        Metrics& metrics;
        StoreWrites& writes;
        store::LogWriter& logs; ///< build logs, written on their own thread
        Reports& reports;       ///< told when a build's checkout is known and when it ends
        Triggers& triggers;     ///< trigger steps, and the ends of the builds they wait for
        Uploads& uploads;       ///< upload steps' files, written on their own thread
        /// Called whenever a slot or a lock may have come free.
        std::function<void()> wake_dispatcher;
        /// Replaced by "[redacted]" in every worker's log chunks and log file chunks before
        /// they are stored, across chunk boundaries: config::secrets(config).
        std::vector<std::string> log_secrets = {};
        /// Told of each write of a build's checkout and end (null: none to tell).
        GridCache* grid = nullptr;
    };
    explicit Coordinator(Parts parts) : p_(std::move(parts)), redaction_(p_.log_secrets) {}

    std::optional<Login>
    login(const std::string& name, const std::string& proof, const std::string& nonce) override;
    void connected(const std::string& name,
                   const Login& login,
                   bool local,
                   std::shared_ptr<Link> link) override;
    void message(const std::string& name, const Link* link, protocol::Message message) override;
    void lost(const std::string& name, const Link* link, const std::string& why) override;

    /// Build spec.build_id is sent to its worker (its upload steps' results go under its
    /// builder and branch).
    void starting(const build::BuildSpec& spec);

    /// Ends running build `id`: stores its end (and its request's: retry queues it again),
    /// gives back its slot and locks, counts it, ends its log followers. Does nothing when the
    /// build ended already.
    void finish(std::int64_t id, BuildResult result, const std::string& message);
    /// Pending request `request` of `builder` was cancelled (and that is stored): a trigger
    /// step waiting for it has its answer.
    void request_cancelled(std::int64_t request, const std::string& builder);
    /// Asks build `id`'s worker to stop it; false when it is not running.
    bool stop(std::int64_t id, const std::string& who);
    /// Pauses (`paused`) or resumes worker `name` (WorkerRegistry::set_paused), and logs it
    /// with `who`. Returns whether this changed anything.
    bool pause_worker(const std::string& name, bool paused, const std::string& who);
    /// Shuts worker `name` down gracefully: no new builds, and it is sent Shutdown, so that it
    /// exits once its running builds have ended. A local worker (in the master's process) only
    /// takes no more builds, until the master restarts. Logged with `who`.
    WorkerRegistry::ShutDown shut_down_worker(const std::string& name, const std::string& who);
    /// No new workers from now on (shutdown); those connected stay until disconnect_all().
    void refuse_workers() { refusing_ = true; }
    /// Closes every worker's link (shutdown), recording them as disconnected.
    void disconnect_all();

private:
    void step_finished(std::int64_t id, const protocol::StepFinished& finished);
    /// Ends the log file watchers of step `step` of build `id` (every step's when < 0) once what
    /// was queued for the store before is stored.
    void end_logfile_watchers(std::int64_t id, int step);
    // A chunk of a step's log / of one of its log files, redacted, to memory and the store.
    // Stores what the redactors held back of the streams that ended.
    void store_rests(std::int64_t id, std::vector<LogRedaction::Rest> rests);
    void store_log(std::int64_t id, int step, std::int64_t sequence, std::string text);
    void store_logfile(protocol::LogFileChunk chunk);
    /// Worker `name` said its instance is going away: no new builds, its builds end as retry.
    void interrupt(const std::string& name, const std::string& reason);
    void save_worker(const std::string& name, const std::string& worker_class, const char* state);

    Parts p_;
    LogRedaction redaction_; // after p_: made from its log_secrets
    std::atomic<bool> refusing_{false};
};

} // namespace ci::master
