#pragma once

// What the HTTP routes use of the master: its components, by reference. Master (master.cpp)
// owns them and outlives every route.

#include <atomic>
#include <filesystem>
#include <functional>
#include <initializer_list>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/coordinator.h"
#include "master/credentials.h"
#include "master/deliveries.h"
#include "master/dispatcher.h"
#include "master/ec2_pool.h"
#include "master/forms.h"
#include "master/grid_cache.h"
#include "master/metrics.h"
#include "master/read_pool.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/router.h"
#include "master/running.h"
#include "master/sessions.h"
#include "master/store_writes.h"
#include "store/ingest.h"
#include "web/page.h"

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
    Ec2Pool* ec2;       ///< EC2 latent workers (instances for the API and /metrics); null: none
    Sessions& sessions; ///< who is looking at a web UI page; logins
    /// DATA_DIR/results (served at /results): where a build's uploads are listed from; empty
    /// for none.
    std::filesystem::path results_dir;
    GridCache& grid; ///< the home grid's store read, kept between builds
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

/// A worker as the workers page and GET /api/v1/workers list it.
struct ListedWorker {
    std::string name;
    std::string worker_class;
    std::optional<WorkerView> live;       ///< when it is connected
    std::optional<InstanceView> instance; ///< its EC2 instance, for a worker of a pool
    /// The live state; for a worker not connected: `stopping` or `stopped` when its instance is
    /// (the pool stopped it; not `lost`), else what was last stored (`lost`, `shut down`...),
    /// else `never connected`.
    std::string state;
    std::optional<WallTime> last_seen; ///< stored; none for a worker never connected
};

/// Every worker the master knows, in this order: the store's (each worker that ever
/// connected), the workers of EC2 instances that have not connected yet, and the static
/// workers of the config (`<class>/<i>`, one per password) that never connected. Call it on a
/// reader thread with the store's workers.
[[nodiscard]] std::vector<ListedWorker>
listed_workers(Services& services, const std::vector<store::WorkerRecord>& stored);

/// A request's state as the API and the pages name it: "pending", "claimed", "completed",
/// "cancelled", "collapsed".
[[nodiscard]] std::string_view request_state_text(store::RequestState state);

/// The user of an API request that passed the router's check (its HTTP basic user): who
/// forced, cancelled or stopped something.
[[nodiscard]] std::string api_user(const Services& services, const http::ServerRequest& request);

/// The web UI's logins: GET and POST /login, POST /logout (routes_login.cpp). POST /login checks
/// its password on `router`'s hash pool; wrong passwords count as the API's do.
void add_login_routes(Router& router, Services& services);

/// What every web UI form route does first: parses the request's form body (`repeatable`: the
/// fields that may repeat), checks its `csrf` field against the session's token (constant
/// time), then calls `then` with the form and the logged-in viewer. Answers itself (400 a bad
/// form, 403 a missing or wrong token, 303 to the login page without a session) otherwise.
void with_form(Services& services,
               const http::ServerRequest& request,
               http::Reply& reply,
               std::initializer_list<std::string_view> repeatable,
               const std::function<void(const Form& form, const Viewer& viewer)>& then);

/// The router's checks over the sessions: the API's HTTP basic; the view check (empty unless
/// auth.view is login: a session or HTTP basic, else 303 to the login page for a browser's page
/// and 401 otherwise); the form routes' session (else 303 to the login page; empty without
/// auth). Credentials not remembered as right are a Verdict with `slow` (a hash).
[[nodiscard]] Router::AuthCheck api_check(const config::Config& config, const Sessions& sessions);
[[nodiscard]] Router::AuthCheck view_check(const config::Config& config, const Sessions& sessions);
[[nodiscard]] Router::Check form_check(const config::Config& config, const Sessions& sessions);

/// The layout's frame of a page answered to `request`: its viewer (from the session), `title`,
/// path and highlighted navigation entry `nav`.
[[nodiscard]] web::Frame page_frame(const Services& services,
                                    const http::ServerRequest& request,
                                    std::string title,
                                    web::Nav nav = web::Nav::None);

/// A form route's refusal, for a person: `status` with `message` as an error page.
[[nodiscard]] http::ServerResponse
form_error(const web::Frame& frame, int status, std::string_view message);

} // namespace ci::master
