#pragma once

// The dispatcher: one thread that hands pending build requests to workers with free slots,
// as assign() (dispatch.h) decides, whenever a request is queued or a slot or lock comes free
// (and every few seconds, so that nothing waits on a lost wake-up).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include <ci/build/runner.h>
#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/coordinator.h"
#include "master/grid_cache.h"
#include "master/locks.h"
#include "master/registry.h"
#include "master/reports.h"
#include "master/running.h"

namespace ci::master {

/// The master's web address as users reach it: buildmaster.url, or http://HOST:PORT with
/// buildmaster.web_port, or `bound_port` (the port it listens on) when that is 0 and
/// `bound_port` is not.
[[nodiscard]] std::string web_url(const config::Config& config, std::uint16_t bound_port = 0);

/// What a worker is sent for a claimed request: the builder's steps, the branch and its merge
/// target (a pure function of the config and the request).
/// `master_url`: web_url(), for CI_MASTER_URL and CI_RESULTS_URL.
[[nodiscard]] build::BuildSpec build_spec(const config::Config& config,
                                          const store::BuildRequest& request,
                                          std::int64_t build_id,
                                          bool is_tag,
                                          const std::string& master_url);

class Dispatcher {
public:
    struct Parts {
        const config::Config& config;
        const Clock& clock;
        store::Store& store;
        WorkerRegistry& workers;
        RunningBuilds& running;
        LockTable& locks;
        Coordinator& coordinator;
        Metrics& metrics;
        Reports& reports;                     ///< told when a build starts
        std::string name;                     ///< the name requests are claimed under
        std::function<std::string()> web_url; ///< the master's web address (web_url())
        GridCache* grid = nullptr;            ///< told of each build's start (null: none to tell)
    };
    explicit Dispatcher(Parts parts) : p_(std::move(parts)) {}
    /// Joins the thread.
    ~Dispatcher();
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    void start();
    /// A request was queued, or a slot or lock came free.
    void wake();
    /// Starts no more builds (shutdown); the thread ends.
    void stop();
    /// Drained (`POST /api/v1/master/drain`): no new build starts, requests stay queued, until
    /// undrained. Returns once no pass that may start a build is under way, so a build started
    /// before the drain is already among the running builds. Not kept across restarts.
    void set_drained(bool drained);
    [[nodiscard]] bool drained() const { return drained_.load(); }

private:
    void run();
    void pass();
    void start_build(const store::BuildRequest& queued, const std::string& worker);
    // Whether request `request` was retried buildmaster.max_retries times already.
    bool retries_spent(std::int64_t request);

    Parts p_;
    std::mutex pass_mutex_; ///< held by a pass; set_drained() waits for it
    std::atomic<bool> drained_{false};
    std::mutex mutex_;
    std::condition_variable wake_;
    bool wanted_ = true;
    bool stopping_ = false;
    std::thread thread_;
};

} // namespace ci::master
