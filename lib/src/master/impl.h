#pragma once

// The master's state, shared by master.cpp (workers, dispatch, builds), worker_server.cpp (the
// worker protocol over TCP) and api.cpp (HTTP).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/http/server.h>
#include <ci/master/master.h>
#include <ci/master/protocol.h>
#include <ci/store/ingest.h>
#include <ci/store/store.h>

#include "store/log_writer.h"

namespace ci::master {

class WorkerServer;

// Where the master sends a worker's messages: a TCP connection, or an in-process worker.
class Link {
public:
    virtual ~Link() = default;
    virtual void send(const protocol::Message& message) = 0;
    virtual void close() = 0;
};

// A connected worker.
struct Worker {
    std::string name;
    std::string worker_class;
    int max_builds = 1;
    bool local = false;
    bool draining = false;
    std::shared_ptr<Link> link;
    std::set<std::int64_t> builds;
    std::chrono::steady_clock::time_point last_seen;
};

// Someone following a step's log over HTTP.
struct Follower {
    std::shared_ptr<http::ResponseStream> stream;
    bool events = false; // Server-Sent Events rather than plain text
};

// A build a worker is running.
struct Running {
    store::Build build;
    std::vector<std::string> locks;
    std::chrono::steady_clock::time_point started;
    std::set<int> finished_steps;
    std::map<int, std::vector<Follower>> followers;
    bool stop_requested = false;
};

// Counters for /metrics (since the master started).
struct Metrics {
    std::map<std::pair<std::string, std::string>, std::uint64_t> finished; // (builder, result)
    // Build durations by builder: counts per bucket (cumulative at output), sum, count.
    struct Histogram {
        std::vector<std::uint64_t> buckets;
        double sum = 0;
        std::uint64_t count = 0;
    };
    std::map<std::string, Histogram> durations;
    std::atomic<std::uint64_t> webhooks_accepted{0};
    std::atomic<std::uint64_t> webhooks_rejected{0};
    std::atomic<std::uint64_t> webhooks_duplicate{0};
};

inline constexpr double duration_buckets[] = {1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600};

namespace detail {

// One Server-Sent Event: `event: NAME` and the data, one `data:` line per line of it.
[[nodiscard]] std::string sse_event(std::string_view event, std::string_view data);

struct MasterState {
    config::Config config;
    MasterOptions options;
    SystemClock system_clock;
    const Clock* clock = nullptr;

    std::unique_ptr<store::Store> store;
    std::unique_ptr<store::Ingestor> ingestor;
    std::unique_ptr<store::LogWriter> log_writer; // build logs, group-committed off the lock
    std::unique_ptr<http::Server> http;
    std::unique_ptr<WorkerServer> worker_server;

    // Static workers: name -> (class, password).
    struct StaticWorker {
        std::string worker_class;
        std::string password;
        int max_builds = 1;
    };
    std::map<std::string, StaticWorker> static_workers;

    // Latent (EC2) workers: the one-time token, then the secret each login derives for the next
    // one (protocol::next_secret; the previous one stays valid until the new one is used, in
    // case the welcome that told the worker to rotate was lost).
    struct LatentCredential {
        std::string worker_class;
        int max_builds = 1;
        std::string secret;
        std::string previous;
        std::optional<WallTime> expires; // set while the one-time token is unused
    };
    struct LatentLogin {
        std::string worker_class;
        int max_builds = 1;
    };
    std::mutex credentials_mutex;
    std::map<std::string, LatentCredential> latent_credentials;

    std::mutex mutex;
    std::condition_variable changed; // dispatch needed, a build ended, stopping
    bool dispatch_needed = true;
    bool accepting_builds = true;
    bool stopping = false;
    std::map<std::string, Worker> workers;
    std::map<std::int64_t, Running> running;
    std::map<std::string, int> locks_in_use;
    Metrics metrics;
    std::thread dispatcher;
    std::thread housekeeper;
    std::thread poller;
    std::once_flag shutdown_once;

    // Webhook deliveries seen (recorded with their changes; remembered here to answer a
    // redelivery without a database read).
    std::mutex deliveries_mutex;
    std::unordered_set<std::string> deliveries;
    // Deliveries being written: a redelivery meanwhile is neither a duplicate (the write may
    // still fail) nor new (it would be stored twice).
    std::unordered_set<std::string> deliveries_in_flight;
    std::deque<std::string> delivery_order;

    [[nodiscard]] WallTime now() const { return clock->now(); }

    // master.cpp
    Status start_services();
    void run_dispatcher();
    void run_housekeeper();
    void run_poller();
    void dispatch_locked();
    void wake_dispatcher();
    void worker_connected(const std::string& name,
                          const std::string& worker_class,
                          int max_builds,
                          bool local,
                          std::shared_ptr<Link> link);
    void worker_lost(const std::string& name, const Link* link, const std::string& why);
    void on_message(const std::string& worker, const Link* link, protocol::Message message);
    void
    finish_build_locked(std::int64_t build, const std::string& result, const std::string& message);
    void stop_build(std::int64_t build, const std::string& who);
    void shutdown();
    Result<WorkerToken> issue_worker_token(const std::string& worker_class,
                                           std::string name_suffix,
                                           std::chrono::seconds lifetime);
    // Checks the hello of a worker that is not a static one; nullopt when refused.
    std::optional<LatentLogin>
    latent_login(const std::string& name, const std::string& proof, const std::string& nonce);

    // api.cpp
    void handle_http(http::ServerRequest& request, http::Reply reply);
    void remember_delivery(const std::string& id);
    void delivery_stored(const std::string& id);
    void forget_delivery(const std::string& id);
};

} // namespace detail

} // namespace ci::master
