#pragma once

/// \file
/// The worker agent: the worker side of the worker protocol (docs/api.md;
/// lib/src/master/protocol.h), what `ci-worker start` runs.
///
/// The agent connects out to the master, proves it knows its secret, and runs the builds the
/// master sends (build::run_build), streaming their progress and logs back. It sends heartbeats;
/// when the connection drops it stops its builds (the master retries them elsewhere) and
/// connects again with a growing, jittered delay. Asked to drain, it takes no new builds,
/// finishes the running ones, and returns.
///
/// Threads: the connection is served by one Boost.Asio event loop on the calling thread; each
/// build runs on a thread of its own and hands its messages to that loop.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stop_token>
#include <string>

#include <ci/build/runner.h>
#include <ci/core/error.h>

namespace ci::worker {

/// How the agent reaches its master and runs its builds.
struct WorkerOptions {
    std::string host = "127.0.0.1"; ///< the master
    std::uint16_t port = 9989;      ///< its buildmaster.worker_port
    std::string name;               ///< as the master's config names it: "<class>/<i>"
    std::string secret;             ///< the worker's password (a secret)
    /// Where a latent worker keeps its secret across restarts (`ci-worker start
    /// --secret-state`, absolute): after each login that rotates the secret, the new one is
    /// saved there (save_secret_state, ci/worker/secret_state.h) so that the worker of an EC2
    /// instance stopped and started again logs in with the secret the master expects. A save
    /// that fails is logged as an error and the worker goes on (the secret stays in memory).
    /// Empty: in memory only.
    std::filesystem::path secret_state;
    int max_builds = 1; ///< reported to the master (its config decides)
    /// Where builds run, git credentials. Without runner.slots, run_worker makes one WorkSlots
    /// over runner.work_root that all its builds lease their directories from.
    build::RunnerOptions runner;
    std::chrono::seconds max_reconnect_delay{30};
    /// Stop trying after this many failed connection attempts in a row; 0: never.
    int max_connect_attempts = 0;
    /// How the master is authenticated (docs/api.md, "TLS"); exactly one of the three:
    /// `ca_file`: PEM CA certificates the master's chain must lead to, and its certificate must
    /// name `host` (`ci-worker --ca`);
    std::string ca_file;
    /// `fingerprint`: "sha256:HEX", the master's certificate must be exactly this one (pinning;
    /// `ci-worker --fingerprint`, what `ci-master fingerprint` prints);
    std::string fingerprint;
    /// `insecure`: no TLS at all, for a master with `buildmaster.tls: false` (`--insecure`; a
    /// warning is logged at each connection).
    bool insecure = false;
    /// The EC2 instance metadata service to watch for spot interruptions and rebalance
    /// recommendations ("http://169.254.169.254"; `ci-worker --imds`); empty: not watched.
    /// On an interruption notice the worker tells the master (which retries its builds
    /// elsewhere at once) and stops its builds; on a rebalance recommendation it takes no new
    /// builds (worker::imds).
    std::string imds_url;
    std::chrono::milliseconds imds_interval{1000}; ///< how often it is polled
    /// Called with one line for people on each state change (connected, build started, ...).
    std::function<void(const std::string&)> on_status;
};

/// Runs the worker until `drain` is requested and its builds have ended (returns success), or
/// until the master refuses it (PermissionDenied with the master's reason: a wrong name or
/// secret does not fix itself; also when the master's certificate is not the one expected, or
/// the master does not speak TLS while this worker does, or the other way round) or
/// max_connect_attempts is reached (Io), or a file the master sent (`worker_files`) cannot be
/// written (Io naming it: the worker stops rather than run builds without it; see
/// docs/config.md, "Worker files"). InvalidArgument when the options do not give exactly
/// one of ca_file, fingerprint and insecure, or the CA file cannot be read.
/// TLS sessions are resumed across reconnections (tickets), so that many workers reconnecting
/// to a restarted master cost it little; the status line of each connection says whether its
/// session was resumed.
[[nodiscard]] Status run_worker(const WorkerOptions& options, std::stop_token drain);

} // namespace ci::worker
