#pragma once

// The master's parts and their wiring (master.cpp). Each part owns its state and its lock, or
// lives on one thread; this struct only holds them, in the order they are built (and the
// reverse order they are destroyed).

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/http/server.h>
#include <ci/master/master.h>
#include <ci/store/store.h>

#include "master/coordinator.h"
#include "master/credentials.h"
#include "master/deliveries.h"
#include "master/dispatcher.h"
#include "master/ec2_pool.h"
#include "master/grid_cache.h"
#include "master/locks.h"
#include "master/metrics.h"
#include "master/poller.h"
#include "master/read_pool.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/router.h"
#include "master/running.h"
#include "master/services.h"
#include "master/sessions.h"
#include "master/store_writes.h"
#include "master/triggers.h"
#include "master/worker_server.h"
#include "store/ingest.h"
#include "store/log_writer.h"

namespace ci::master::detail {

struct MasterState {
    MasterState(config::Config c, MasterOptions o);
    ~MasterState();

    config::Config config;
    MasterOptions options;
    SystemClock system_clock;
    const Clock& clock;

    Metrics metrics;
    Credentials credentials;
    Deliveries deliveries;
    WorkerRegistry workers;
    LockTable locks;
    RunningBuilds running;
    Sessions sessions;
    GridCache grid_cache{config}; ///< the home grid's store read, between builds
    std::atomic<bool> accepting{true};

    std::unique_ptr<store::Store> store;
    std::unique_ptr<StoreWrites> writes;
    std::unique_ptr<ReadPool> reads;
    std::unique_ptr<Reports> reports; ///< reporters (GitHub statuses, Zulip, the embedder's own)
    /// `reports` for the reporters' own threads (a reporter giving up), set once it exists.
    std::atomic<Reports*> ops_reports{nullptr};
    std::unique_ptr<Triggers> triggers; ///< trigger steps (answered through the workers' links)
    std::unique_ptr<Uploads> uploads;   ///< upload steps' files (answered through the links)
    std::unique_ptr<Coordinator> coordinator;
    std::unique_ptr<Dispatcher> dispatcher;
    std::unique_ptr<store::Ingestor> ingestor;
    std::unique_ptr<Services> services;
    std::unique_ptr<Router> router;
    std::unique_ptr<store::LogWriter> logs; ///< build logs, group-committed off every lock
    std::unique_ptr<http::Server> http;
    std::unique_ptr<WorkerServer> worker_server;
    std::unique_ptr<Poller> poller;
    std::unique_ptr<Ec2Pool> ec2; ///< EC2 latent workers; null when no class has `ami`
    /// The worker port's certificate fingerprint (empty with TLS off), set by start_servers
    /// before the EC2 pool starts: its instances' user data pins it.
    std::string worker_fingerprint;

    // A background loop that is not a part of its own (yet): worker records now and then, and
    // the store's health (an OpsEvent when it degrades). It waits on `quiet` until `stopping`.
    std::mutex quiet_mutex;
    std::condition_variable quiet;
    bool stopping = false;
    std::thread housekeeper;
    std::once_flag shutdown_once;

    [[nodiscard]] Status start();
    void shutdown();

private:
    Status open_store();
    Status start_reporters();
    Status start_servers();
    /// Starts the local workers, their steps run as `step_users` (local_step_users).
    void start_local_workers(const std::map<std::string, RunAs>& step_users);
    Status start_ec2_pool();
    UserDataRenderer ec2_user_data();
    void run_housekeeper();
    void wait_for_builds(std::chrono::steady_clock::time_point deadline);
    void stop_builds();
};

} // namespace ci::master::detail
