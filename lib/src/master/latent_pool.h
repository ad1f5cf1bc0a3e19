#pragma once

// The pool of EC2 latent workers, as a pure state machine: it is told what waits, which workers
// are connected, what EC2 answered and what time it is, and returns what to do (launch,
// terminate, stop, start, drain a worker, tell the operators). No clock, no threads, no I/O:
// the master's Ec2Pool (ec2_pool.h) performs its actions and feeds the answers back.
//
// The rules it keeps (issue 18, "never leak"):
// - A launch is recorded (state Launching, with its worker name and ClientToken) before the
//   action is returned, so that the shell stores the intent before RunInstances is called.
// - An instance whose worker never connected within missing_timeout of its launch (or of its
//   start, for a stopped one started again), or whose connection dropped missing_timeout ago,
//   is terminated; so is one whose worker had no build for build_wait_timeout (or stopped,
//   with idle_action stop, while its class keeps fewer than stopped_max stopped or stopping
//   instances: on-demand ones only), and one older than max_lifetime once it is idle (it is
//   drained first) or while it is stopped.
// - Stopped instances are used before launching: when requests wait, the most recently
//   stopped of the class is started (its disk has the newest git mirrors and caches; the
//   oldest ones are the first to go when the class keeps too many). A class keeping more than
//   stopped_max (0 once idle_action is no longer stop) terminates its least recently stopped.
//   A start EC2 refused, or that EC2 still shows stopped launch_grace later, is terminated.
// - A termination is verified: the instance stays Terminating until reconcile() sees EC2 say
//   "terminated" (or no longer list it); one still there resend_after later is terminated
//   again and reported. A stop too: Stopping until reconcile() sees "stopped"; one not
//   stopped resend_after later (or whose StopInstances failed) is terminated and reported.
// - A restarted master adopts the instances it had stored whose workers can still log in (their
//   keys are in the store): they live on under the same rules; the others are terminated.
// - reconcile() compares every instance tagged ci:master=<host> with what the pool knows: an
//   unknown one (another run of this master, a lost RunInstances answer nobody claims) is
//   terminated; an intent is matched to its instance by the ci:worker tag; an instance that
//   ended without being asked (a spot interruption) is lost, and its worker's builds retried.
// - Launch failures back off per class: 10 s after the first, doubling up to 240 s, each with
//   jitter (a random half of the delay added to its other half); a success resets it.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>

namespace ci::master {

enum class Market : std::uint8_t { OnDemand, Spot };
/// "on-demand" or "spot", as metrics and the API show it.
[[nodiscard]] const char* to_string(Market market);

/// Where an instance is in its life, as the pool knows it.
enum class InstanceState : std::uint8_t {
    Launching,   ///< intent stored; RunInstances not answered (or its answer was lost)
    Pending,     ///< EC2 "pending"
    Running,     ///< EC2 "running"
    Stopping,    ///< StopInstances sent, or EC2 "stopping"
    Stopped,     ///< EC2 "stopped": kept for idle_action stop
    Terminating, ///< TerminateInstances sent (or EC2 "shutting-down"), not yet verified
    Terminated,  ///< EC2 said "terminated" (or the launch never made an instance)
};
/// "launching", "pending", "running", "stopping", "stopped", "terminating", "terminated".
[[nodiscard]] const char* to_string(InstanceState state);
/// The inverse of to_string; nullopt for another word.
[[nodiscard]] std::optional<InstanceState> instance_state_from(std::string_view text);

/// One instance of the pool.
struct PoolInstance {
    std::string worker;       ///< "<class>/<suffix>": its worker's name and ci:worker tag
    std::string worker_class; ///< the `slaves` class
    std::string client_token; ///< RunInstances' ClientToken (idempotent launch)
    std::string instance_id;  ///< empty until RunInstances answered or reconcile found it
    std::string instance_type;
    InstanceState state = InstanceState::Launching;
    Market market = Market::OnDemand;
    WallTime launched{}; ///< when the launch was decided (the intent)
    /// When the worker last had a build, or first connected: idleness counts from here.
    std::optional<WallTime> busy_at;
    std::optional<WallTime> disconnected_at; ///< its connection dropped (after connecting)
    std::optional<WallTime> ended_at;        ///< terminate (or stop) sent
    /// StartInstances sent (a stopped instance started again): missing_timeout counts from
    /// here until its worker connects. Not stored: a restarted master gives a started
    /// instance's worker missing_timeout from the restart, as any adopted one.
    std::optional<WallTime> started_at;
    bool connected_once = false;
    bool draining = false; ///< past max_lifetime: takes no new builds
    /// Restored from the store at start without its worker's credentials (or found by
    /// reconcile, unknown): its worker can never log in, so it is terminated.
    bool orphaned = false;
    /// Bumped on every change: the shell stores the instances whose version moved.
    std::uint64_t version = 0;
    friend bool operator==(const PoolInstance&, const PoolInstance&) = default;
};

/// What EC2 lists (DescribeInstances) of an instance tagged ci:master=<host>.
struct ObservedInstance {
    std::string instance_id;
    std::string state; ///< EC2's word: pending, running, shutting-down, terminated, stopping...
    std::string worker_class; ///< its ci:class tag
    std::string worker;       ///< its ci:worker tag
    bool spot = false;
};

/// What the pool sees of the master at one moment.
struct PoolView {
    /// Per class: build requests that wait for it and that no connected worker can take now.
    std::map<std::string, int> waiting;
    /// Connected workers by name, with their running builds.
    std::map<std::string, int> connected;
};

/// How a launch failed, as the shell classifies EC2's answer.
enum class LaunchFailure : std::uint8_t {
    Throttled, ///< RequestLimitExceeded and the like: nothing was launched
    Capacity,  ///< InsufficientInstanceCapacity or a spot error: nothing was launched
    Refused,   ///< any other error answer: nothing was launched
    Unknown,   ///< no answer (timeout, lost response): an instance may exist; reconcile decides
};

struct LaunchAction {
    std::string worker_class;
    std::string worker;
    std::string client_token;
    Market market = Market::OnDemand;
};
struct TerminateAction {
    std::vector<std::string> instance_ids;
    std::string reason;
};
struct StopAction {
    std::string instance_id;
    std::string worker;
};
struct StartAction {
    std::string instance_id;
    std::string worker;
};
/// The worker takes no new builds (past max_lifetime, or about to be ended).
struct DrainAction {
    std::string worker;
};
/// The instance of `worker` is gone: its running builds end as retry, its credentials go.
struct LostAction {
    std::string worker;
    std::string reason;
};
/// An operational error for the operators (log, Zulip's ops stream).
struct AlertAction {
    std::string message;
};
using PoolAction = std::variant<LaunchAction,
                                TerminateAction,
                                StopAction,
                                StartAction,
                                DrainAction,
                                LostAction,
                                AlertAction>;

/// The pool's settings of one class (from `slaves.<class>`).
struct PoolClass {
    int max_instances = 1;
    int max_builds = 1;
    std::string instance_type;
    bool spot = false;
    bool spot_fallback = false;
    std::chrono::seconds missing_timeout{1200};
    std::chrono::seconds idle_timeout{3000};
    std::optional<std::chrono::seconds> max_lifetime;
    bool stop_when_idle = false;
    int stopped_max = 0;
};
/// The settings of every EC2 class of `config`.
[[nodiscard]] std::map<std::string, PoolClass> pool_classes(const config::Config& config);

/// Where randomness comes from: names and tokens, and jitter. The master uses the CSPRNG;
/// tests pass their own.
struct PoolRandom {
    std::function<std::string()> token; ///< a fresh random suffix (names, ClientTokens)
    std::function<double()> uniform;    ///< in [0, 1)
};

class LatentPool {
public:
    /// Timing of the pool's own checks.
    static constexpr auto launch_grace = std::chrono::minutes(2); // an intent with no instance
    static constexpr auto resend_after = std::chrono::minutes(5); // a termination not seen
    static constexpr auto backoff_start = std::chrono::seconds(10);
    static constexpr auto backoff_cap = std::chrono::seconds(240);
    static constexpr auto spot_pause = std::chrono::minutes(10); // on-demand after no capacity

    LatentPool(std::map<std::string, PoolClass> classes, PoolRandom random);

    /// Instances stored by a previous run of the master (a crash: a graceful stop terminates
    /// them). Those the shell marked `orphaned` (their worker's credentials are gone) are ended
    /// by the next tick. The others are adopted: one whose worker had connected
    /// (`connected_once`) counts as disconnected at `now`, so its worker has missing_timeout to
    /// come back; one whose worker never connected still has until missing_timeout after its
    /// launch. A Launching intent is matched to its instance by reconcile, as before.
    void restore(std::vector<PoolInstance> stored, WallTime now);

    /// One step: updates what it knows of the workers from `view`, and returns the actions due
    /// at `now` (ends, launches, starts, drains, alerts).
    [[nodiscard]] std::vector<PoolAction> tick(const PoolView& view, WallTime now);

    /// RunInstances answered for `worker`'s launch with this instance.
    void
    launched(const std::string& worker, const std::string& instance_id, bool spot, WallTime now);
    /// RunInstances failed for `worker`'s launch. Returns alerts (a launch failure is an
    /// operational error).
    [[nodiscard]] std::vector<PoolAction> launch_failed(const std::string& worker,
                                                        LaunchFailure failure,
                                                        const std::string& error,
                                                        WallTime now);
    /// TerminateInstances or StopInstances failed for these instances. A termination is tried
    /// again by a later tick; a failed stop becomes a termination (returned, with an alert):
    /// an idle instance is never left running.
    [[nodiscard]] std::vector<PoolAction> end_failed(const std::vector<std::string>& instance_ids,
                                                     WallTime now);
    /// StartInstances failed for a stopped instance the pool was starting. `failure` as for a
    /// launch: with no answer (Unknown) it may have started, and stays Pending under
    /// missing_timeout; refused, it is terminated (returned, with an alert), and the demand
    /// launches a fresh instance at the next tick.
    [[nodiscard]] std::vector<PoolAction> start_failed(const std::string& instance_id,
                                                       LaunchFailure failure,
                                                       const std::string& error,
                                                       WallTime now);

    /// Compares EC2's list of tagged instances (every page of DescribeInstances filtered by
    /// tag ci:master=<host>) with the pool and returns what to do about the differences.
    [[nodiscard]] std::vector<PoolAction> reconcile(const std::vector<ObservedInstance>& observed,
                                                    WallTime now);

    /// Every instance the pool knows, terminated ones until forget_terminated().
    [[nodiscard]] const std::vector<PoolInstance>& instances() const noexcept { return instances_; }
    /// Drops the terminated instances (once the shell stored them).
    void forget_terminated();
    /// The instance of `worker`, or nullptr.
    [[nodiscard]] const PoolInstance* find_worker(const std::string& worker) const;
    /// Seconds instances ran (pending to terminating), per class and market, up to the last
    /// tick: ci_ec2_instance_seconds_total.
    [[nodiscard]] const std::map<std::pair<std::string, Market>, double>&
    instance_seconds() const noexcept {
        return seconds_;
    }
    /// When the next launch of `worker_class` may happen (backoff), if it is held back.
    [[nodiscard]] std::optional<WallTime> launch_held_until(const std::string& worker_class) const;

private:
    struct ClassState {
        int failures = 0;
        std::optional<WallTime> next_launch;
        std::optional<WallTime> on_demand_until; // spot unavailable: on-demand meanwhile
    };

    PoolInstance* find_worker_mut(const std::string& worker);
    PoolInstance* find_id(const std::string& instance_id);
    static void change(PoolInstance& instance, InstanceState state);
    void end(PoolInstance& instance,
             const PoolClass& settings,
             bool may_stop,
             const std::string& reason,
             WallTime now,
             std::vector<PoolAction>& actions);
    void check_instance(PoolInstance& instance,
                        const PoolView& view,
                        WallTime now,
                        std::vector<PoolAction>& actions);
    void trim_stopped(const std::string& name,
                      const PoolClass& settings,
                      WallTime now,
                      std::vector<PoolAction>& actions);
    void launch_for_demand(const std::string& name,
                           const PoolClass& settings,
                           const PoolView& view,
                           WallTime now,
                           std::vector<PoolAction>& actions);
    void account(WallTime now);

    std::map<std::string, PoolClass> classes_;
    PoolRandom random_;
    std::vector<PoolInstance> instances_;
    std::map<std::string, ClassState> class_state_;
    std::map<std::pair<std::string, Market>, double> seconds_;
    std::optional<WallTime> accounted_at_;
};

} // namespace ci::master
