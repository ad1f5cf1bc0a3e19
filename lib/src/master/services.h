#pragma once

// What the HTTP routes use of the master: its components, by reference. Master (master.cpp)
// owns them and outlives every route.

#include <atomic>
#include <filesystem>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/coordinator.h"
#include "master/credentials.h"
#include "master/deliveries.h"
#include "master/dispatcher.h"
#include "master/ec2_pool.h"
#include "master/metrics.h"
#include "master/read_pool.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/router.h"
#include "master/running.h"
#include "master/sessions.h"
#include "master/store_writes.h"
#include "store/ingest.h"

namespace ci::master {

struct Services {
    const config::Config& config;
    const Clock& clock;
    ReadPool& reads; ///< every store read of a route goes here, off the HTTP thread
    store::Ingestor& ingestor;
    Deliveries& deliveries;
    Credentials& credentials;
    WorkerRegistry& workers;
    RunningBuilds& running;
    Metrics& metrics;
    StoreWrites& writes;
    Coordinator& coordinator;
    Reports& reports;
    Dispatcher& dispatcher;             ///< drained and undrained by the API
    const std::atomic<bool>& accepting; ///< false once the master is shutting down
    Ec2Pool* ec2; ///< EC2 latent workers (instances for the API and /metrics); null: none
    const Sessions& sessions; ///< who is looking at a web UI page
};

/// Each resource's routes, one file each (routes_<resource>.cpp).
void add_webhook_routes(Router& router, Services& services);
void add_builder_routes(Router& router, Services& services);
void add_change_routes(Router& router, Services& services);
void add_request_routes(Router& router, Services& services);
void add_build_routes(Router& router, Services& services);
void add_worker_routes(Router& router, Services& services);
void add_health_routes(Router& router, Services& services);
void add_master_routes(Router& router, Services& services);
/// The web UI: its pages (home, builders, workers, badges) and GET /static/NAME.
void add_ui_routes(Router& router, Services& services);
/// GET /builds/{id}: the build page (routes_build_page.cpp).
void add_build_page_routes(Router& router, Services& services);
/// GET /results/...: the files under `results_dir` (DATA_DIR/results), read-only.
void add_results_routes(Router& router, const std::filesystem::path& results_dir);

/// What a build's steps add up to: its properties (those it was requested with, then what its
/// steps set, in step order) and its tests (every step's added up; nullopt when none read
/// any). For the JSON API and the build page alike.
struct BuildTotals {
    std::map<std::string, std::string> properties;
    std::optional<build::TestResults> tests;
};
[[nodiscard]] BuildTotals build_totals(const store::BuildRequest* request,
                                       const std::vector<store::Step>& steps);

/// The user the config's auth names (who forced, cancelled or stopped something).
[[nodiscard]] std::string api_user(const Services& services);

} // namespace ci::master
