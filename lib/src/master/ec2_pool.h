#pragma once

// The master's pool of EC2 latent workers: the I/O shell around LatentPool (latent_pool.h).
// One thread, woken when requests are queued and every second: it reads what waits (pending
// requests no connected worker can take), asks the pool what to do, and does it against EC2,
// storing each instance in the store (its own SQLite connection, written synchronously) before
// the EC2 call that could create it and after every change. Every `reconcile` interval (and at
// start) it lists the instances tagged ci:master=<buildmaster.host> that are not terminated and
// hands the list to the pool, which ends what it does not know and verifies terminations.
//
// Each launch gets a one-time worker token (Credentials::issue_token, valid for the class's
// missing_timeout; its key stored before RunInstances) and user data from the `user_data` seam;
// a terminated or lost instance's worker credentials are revoked and its connection closed (its
// builds are retried); a stopped one's stay, so that its worker logs in again when it is
// started (StartInstances, before any launch). At start, the stored instances whose workers
// still have stored keys are adopted (LatentPool::restore), stopped ones included, the others
// terminated. Each class's image is looked up at most once per image_ttl.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <ci/aws/ec2.h>
#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/store/store.h>

#include "master/credentials.h"
#include "master/latent_pool.h"
#include "master/registry.h"
#include "master/reports.h"

namespace ci::master {

/// The user data of an instance about to launch: (class, worker name, one-time token) ->
/// the text EC2 passes to cloud-init. A secret (it holds the token): never logged.
using UserDataRenderer = std::function<Result<std::string>(
    const std::string& worker_class, const std::string& worker, const std::string& token)>;

/// What the workers API and /metrics show of an instance.
struct InstanceView {
    std::string worker;
    std::string worker_class;
    std::string instance_id;
    std::string instance_type;
    std::string market; ///< "spot" or "on-demand"
    std::string state;  ///< to_string(InstanceState)
    WallTime launched{};
};

/// EC2 as the pool uses it (Ec2Client in the master; the same against moto in tests).
class Ec2Api {
public:
    virtual ~Ec2Api() = default;
    [[nodiscard]] virtual Result<std::vector<aws::Instance>>
    run_instances(const aws::RunInstancesInput& input) = 0;
    [[nodiscard]] virtual Result<std::vector<aws::Instance>>
    describe_instances(const std::vector<aws::Filter>& filters) = 0;
    [[nodiscard]] virtual Status terminate_instances(const std::vector<std::string>& ids) = 0;
    [[nodiscard]] virtual Status stop_instances(const std::vector<std::string>& ids) = 0;
    [[nodiscard]] virtual Status start_instances(const std::vector<std::string>& ids) = 0;
    [[nodiscard]] virtual Result<std::vector<aws::Image>>
    describe_images(const std::vector<aws::Filter>& filters) = 0;
};

/// An Ec2Api for `region` of the config's `aws` section (its endpoint: ec2_endpoint_url), whose
/// calls each attempt may take `timeout`.
[[nodiscard]] std::shared_ptr<Ec2Api> make_ec2_api(const config::Config& config,
                                                   const std::string& region,
                                                   const Clock& clock,
                                                   std::chrono::milliseconds timeout);

class Ec2Pool {
public:
    struct Parts {
        const config::Config& config;
        const Clock& clock;
        Credentials& credentials;
        WorkerRegistry& workers;
        Reports& reports;
        std::filesystem::path store_path; ///< the master's state (its own connection)
        UserDataRenderer user_data;       ///< empty: no user data
        std::chrono::seconds reconcile_every{180};
        /// The EC2 API per region (tests); empty: make_ec2_api with `timeout`.
        std::function<std::shared_ptr<Ec2Api>(const std::string& region)> api;
        /// How long one attempt of an EC2 call may take (make_ec2_api's).
        std::chrono::milliseconds timeout{30000};
    };

    /// How long a class's image (DescribeImages by its tags, the newest) is used for launches
    /// before it is looked up again. A launch refused with InvalidAMIID.* looks it up at once.
    static constexpr std::chrono::seconds image_ttl{300};

    /// Opens its store connection and restores the instances a previous run stored. Fails
    /// with the store's error.
    [[nodiscard]] static Result<std::unique_ptr<Ec2Pool>> create(Parts parts);
    ~Ec2Pool();
    Ec2Pool(const Ec2Pool&) = delete;
    Ec2Pool& operator=(const Ec2Pool&) = delete;

    /// Starts the thread: a reconcile at once, then ticks.
    void start();
    /// Something was queued or a worker came or went: look now.
    void wake();
    /// Launches nothing more (the master is shutting down: requests queued again by stopped
    /// builds wait for the next start); ends and reconciles go on until stop().
    void hold_launches() { held_ = true; }
    /// Stops the thread and, when it was started, terminates the pool's instances (best
    /// effort: what fails is terminated by the next start's reconcile). Idempotent.
    void stop();

    /// One step on the calling thread (a reconcile first when `reconcile` or when it is due),
    /// for tests that drive the pool with their own clock; never while the thread runs.
    void step(bool reconcile);

    /// Every instance not yet terminated, for the API and /metrics.
    [[nodiscard]] std::vector<InstanceView> instances();
    /// The instance of `worker`, if it is one of the pool's.
    [[nodiscard]] std::optional<InstanceView> instance_of(const std::string& worker);
    /// ci_ec2_instance_seconds_total: by (class, market).
    [[nodiscard]] std::map<std::pair<std::string, std::string>, double> instance_seconds();

private:
    explicit Ec2Pool(Parts parts);
    void run(const std::stop_token& stop);
    PoolView view();
    void reconcile();
    void perform(const std::vector<PoolAction>& actions);
    void launch(const LaunchAction& action);
    void end_instances(const std::vector<std::string>& ids, const std::string& why, bool stop_only);
    void lost(const LostAction& action);
    void alert(const std::string& message);
    // The class's image: from the cache while it is fresh (image_ttl), else looked up.
    Result<std::string> image_for(const std::string& worker_class);
    Result<std::string> look_up_image(const std::string& worker_class);
    std::shared_ptr<Ec2Api> api_for(const std::string& worker_class);
    std::string region_of(const std::string& worker_class) const;
    void persist();
    void publish();

    Parts p_;
    std::unique_ptr<store::Store> store_;
    LatentPool pool_;
    std::map<std::string, std::uint64_t> saved_versions_; // client token -> version stored
    std::map<std::string, std::shared_ptr<Ec2Api>> apis_; // by region
    struct CachedImage {
        std::string image_id;
        WallTime until;
    };
    std::map<std::string, CachedImage> images_; // by class
    std::optional<WallTime> next_reconcile_;
    std::atomic<bool> held_{false};

    std::mutex mutex_; // the thread's wake-ups, and the published views below
    std::condition_variable_any wake_;
    bool wanted_ = false;
    std::vector<InstanceView> published_;
    std::map<std::pair<std::string, std::string>, double> seconds_;
    std::jthread thread_;
    bool stopped_ = false;
};

} // namespace ci::master
