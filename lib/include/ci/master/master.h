#pragma once

/// \file
/// The master: the HTTP service (GitHub webhooks, the REST API, build logs, health and
/// metrics), the worker protocol server, the scheduler with its persistent state, and the
/// dispatcher that hands build requests to workers.
///
/// Threads: the HTTP server's I/O threads, one thread for worker connections, the ingest writer
/// (scheduler + group commit), one dispatcher, the ref poller (when a repository has a
/// poll_interval), and one thread per build of a local (in-process) worker. Everything that
/// changes the master's view of workers and running builds happens under one mutex, and every
/// change is written to the store before it is acknowledged.
///
/// Durability: a webhook is answered only once its changes are on disk; a build request is on
/// disk before anything runs it. A master killed with -9 restarts with every request it had:
/// builds that were running end as "retry" and their requests return to the queue. The poller's
/// last reading of each repository is stored after that poll's changes: a restarted master
/// builds what was pushed while it was down.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/core/process.h>
#include <ci/report/reporter.h>

namespace ci::master {

namespace detail {
struct MasterState; ///< the implementation (lib/src/master)
} // namespace detail

/// An EC2 instance about to launch, as its user data sees it.
struct Ec2Launch {
    std::string worker_class; ///< `slaves.<class>`
    std::string worker;       ///< its worker's name, "<class>/<suffix>" (also its ci:worker tag)
    std::string token;        ///< its one-time registration token (a secret)
    std::uint16_t worker_port = 0;  ///< the worker port as bound (the config's may be 0)
    std::string master_fingerprint; ///< the worker port's certificate, "sha256:HEX"
};

/// The user data of an instance about to launch (the text EC2 hands to cloud-init).
using Ec2UserData = std::function<Result<std::string>(const Ec2Launch& launch)>;

/// The renderer `ci-master start` gives the master and `ci-master render-user-data` prints
/// with: each EC2 class's `user_data_template` (else the default template) is read now, and
/// each launch fills it in (config::render_user_data) with buildmaster.host, the bound worker
/// port, the fingerprint, the worker's name and token, the class and its unreachable_timeout.
/// Fails naming the file that cannot be read or the placeholder that is wrong. A launch fails
/// (naming its class) when the class has no template read here or the fingerprint is empty
/// (`buildmaster.tls: false`: a worker booted from it could not check the master).
[[nodiscard]] Result<Ec2UserData> ec2_user_data_renderer(const config::Config& config);

/// How a master runs (what the config file does not say).
struct MasterOptions {
    /// Where the HTTP and worker ports listen: "0.0.0.0" (every interface) or one address.
    std::string listen_address = "0.0.0.0";
    /// Local workers keep their work directories under data_dir/work and git mirrors under
    /// data_dir/cache.
    std::filesystem::path data_dir = ".";
    /// How often workers send heartbeats; one silent for three intervals is lost.
    std::chrono::seconds heartbeat{10};
    /// On shutdown, how long running builds may go on before they are stopped (and queued
    /// again for the next start).
    std::chrono::seconds shutdown_grace{60};
    /// HTTP I/O threads. One is the default: webhooks are written to the store on that thread,
    /// once per round of requests read together (a group commit without a thread hand-off);
    /// more threads only add hand-offs for the webhook path, but may help a master with many
    /// cores that serves many heavy API readers.
    unsigned http_threads = 1;
    /// Token local workers and the poller use for HTTPS git remotes (a secret; empty: none).
    std::string git_token;
    /// Private key file local workers and the poller use for SSH git remotes (empty: the SSH
    /// agent).
    std::string ssh_key;
    /// Local workers run each step in a cgroup of its own made by these (core/cgroup.h);
    /// null: the step's supervisor alone stops its processes.
    std::shared_ptr<StepCgroups> step_cgroups;
    /// The name this master claims build requests under.
    std::string dispatcher_name = "master";
    /// The clock (tests); null: the system clock. Must outlive the master.
    const Clock* clock = nullptr;
    /// Reporters of the embedding program, told of every build request's life besides the
    /// GitHub reporter (which the config's `github.report_status` starts). The master stops
    /// them (Reporter::stop) when it shuts down.
    std::vector<std::shared_ptr<report::Reporter>> reporters;
    /// The user data of each EC2 instance about to launch (a secret: it holds the one-time
    /// token). `ci-master start` passes ec2_user_data_renderer(config). Empty: instances launch
    /// with no user data (an embedding program that boots its workers otherwise).
    Ec2UserData ec2_user_data;
    /// How often the EC2 pools list their tagged instances and reconcile them with what they
    /// know (also once at start).
    std::chrono::seconds ec2_reconcile{180};
    /// How long one EC2 call (one attempt: a timed-out call is retried like a lost answer)
    /// may take before the pool gives up on it.
    std::chrono::milliseconds ec2_timeout{30000};
};

/// A one-time registration token for a worker of an EC2 latent class (`slaves.<class>` with
/// `ami`): the worker logs in once with it (`ci-worker start --name NAME`, the token as its
/// secret); from then on each login derives, on both sides, the secret for the next
/// one (protocol::next_secret).
struct WorkerToken {
    std::string name;                              ///< the worker's name: "<class>/<suffix>"
    std::string token;                             ///< a secret: 64 hex characters from the CSPRNG
    std::chrono::system_clock::time_point expires; ///< unused after this, it is refused
};

/// What worker_certificate_fingerprint does when `data_dir` has no self-signed certificate.
enum class MissingCertificate {
    Refuse, ///< fail (NotFound, naming the path): a wrong data dir would give a wrong pin
    Create, ///< create it, as the master's first start does (rotation)
};

/// The worker port's certificate (docs/api.md, "TLS"): the config's `buildmaster.tls.cert`, or
/// else the self-signed one for `buildmaster.host` in `data_dir`/tls (created when missing only
/// with MissingCertificate::Create). Returns its fingerprint, "sha256:" and 64 hex digits, what
/// `ci-worker start --fingerprint` pins. Fails with InvalidArgument when TLS is off
/// (`buildmaster.tls: false`) or the configured files cannot be used (naming the key and the
/// file), NotFound when the self-signed certificate is missing and `missing` is Refuse, Io when
/// it cannot be written.
[[nodiscard]] Result<std::string>
worker_certificate_fingerprint(const config::Config& config,
                               const std::filesystem::path& data_dir,
                               MissingCertificate missing);

/// Checks the files `buildmaster.tls.cert` and `buildmaster.tls.key` name, when the config
/// names them: both readable PEM, the key that of the certificate. Errors name the key and the
/// file. Success when the config names none (or TLS is off).
[[nodiscard]] Status check_worker_certificate(const config::Config& config);

/// The users of `slaves.<class>.step_user` (local worker classes), by class, from the user
/// database. Fails with NotFound ("slaves.local.step_user: step_user 'x': no such user") or
/// PermissionDenied when this process is not root ("slaves.local.step_user: the master must
/// run as root to run steps as 'x' (it runs as uid 1000)"): check-config and Master::start
/// check with it.
[[nodiscard]] Result<std::map<std::string, RunAs>> local_step_users(const config::Config& config);

/// A running master. Create with start(); destroying it shuts it down (see shutdown()).
class Master {
public:
    /// Opens the state database (creating or migrating it), ends builds a previous master left
    /// unfinished ("retry", requests queued again), restores the scheduler's waits, binds the
    /// web and worker ports and starts serving. Fails with the store's error, or Io naming the
    /// address and port that could not be bound; nothing keeps running after a failure.
    [[nodiscard]] static Result<std::unique_ptr<Master>> start(const config::Config& config,
                                                               MasterOptions options = {});
    ~Master();
    Master(const Master&) = delete;
    Master& operator=(const Master&) = delete;

    /// The bound HTTP port (the configured one, or the one the system chose for 0).
    [[nodiscard]] std::uint16_t web_port() const;
    /// The bound worker port.
    [[nodiscard]] std::uint16_t worker_port() const;

    /// Issues a one-time token for a new worker of the EC2 latent class `worker_class`, named
    /// "<class>/<name_suffix>" (a random suffix when empty; an EC2 pool passes the instance id).
    /// Fails with InvalidArgument for a class that is not an EC2 class of the config. A token
    /// issued here is not one of the EC2 pool's instances: a restarted master forgets it (and a
    /// worker that used it must be given a new one). The pool's own workers are adopted after a
    /// crash (docs/architecture.md, "EC2 latent pools").
    [[nodiscard]] Result<WorkerToken>
    issue_worker_token(const std::string& worker_class,
                       std::string name_suffix = {},
                       std::chrono::seconds lifetime = std::chrono::minutes(15));

    /// Stops gracefully: no new connections, webhooks or builds; running builds get up to
    /// `shutdown_grace` to finish, then are stopped and their requests queued again; everything
    /// is written to the store. Idempotent; blocks until done. Safe to call from any thread
    /// except the master's own.
    void shutdown();

private:
    explicit Master(std::unique_ptr<detail::MasterState> state);
    std::unique_ptr<detail::MasterState> state_;
};

} // namespace ci::master
