#include "master/latent_pool.h"

#include <algorithm>
#include <array>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace ci::master {

namespace {

constexpr std::array<const char*, 7> state_names{
    "launching", "pending", "running", "stopping", "stopped", "terminating", "terminated"};

// Instances that cost money and count against `slaves`.
bool active(InstanceState state) {
    return state == InstanceState::Launching || state == InstanceState::Pending ||
           state == InstanceState::Running;
}

// What EC2's word means for the pool.
std::optional<InstanceState> from_ec2(std::string_view state) {
    if (state == "pending") {
        return InstanceState::Pending;
    }
    if (state == "running") {
        return InstanceState::Running;
    }
    if (state == "stopping") {
        return InstanceState::Stopping;
    }
    if (state == "stopped") {
        return InstanceState::Stopped;
    }
    if (state == "shutting-down") {
        return InstanceState::Terminating;
    }
    if (state == "terminated") {
        return InstanceState::Terminated;
    }
    return std::nullopt;
}

// Whole seconds from `from` to `to`, for messages.
long long seconds_between(WallTime from, WallTime to) {
    return std::chrono::duration_cast<std::chrono::seconds>(to - from).count();
}

// A stopped instance started again (by the pool, or by someone else): `launched` stays
// (max_lifetime counts from the launch); missing_timeout counts from the start.
void mark_started(PoolInstance& instance, WallTime now) {
    instance.state = InstanceState::Pending;
    instance.started_at = now;
    instance.connected_once = false;
    instance.disconnected_at.reset();
    instance.ended_at.reset();
    instance.busy_at.reset();
    ++instance.version;
}

std::chrono::seconds backoff_delay(int failures) {
    auto delay = LatentPool::backoff_start;
    for (int i = 1; i < failures && delay < LatentPool::backoff_cap; ++i) {
        delay *= 2;
    }
    return std::min(delay, std::chrono::seconds(LatentPool::backoff_cap));
}

} // namespace

const char* to_string(Market market) {
    return market == Market::Spot ? "spot" : "on-demand";
}

const char* to_string(InstanceState state) {
    return state_names.at(static_cast<std::size_t>(state));
}

std::optional<InstanceState> instance_state_from(std::string_view text) {
    for (std::size_t i = 0; i < state_names.size(); ++i) {
        if (text == state_names.at(i)) {
            return static_cast<InstanceState>(i);
        }
    }
    return std::nullopt;
}

std::map<std::string, PoolClass> pool_classes(const config::Config& config) {
    std::map<std::string, PoolClass> classes;
    for (const auto& [name, worker_class] : config.slaves) {
        const auto* ec2 = std::get_if<config::Ec2Workers>(&worker_class);
        if (ec2 == nullptr) {
            continue;
        }
        PoolClass settings;
        settings.max_instances = ec2->count;
        settings.max_builds = ec2->max_builds;
        settings.instance_type = ec2->instance_type;
        settings.spot = ec2->max_spot_price.has_value();
        settings.spot_fallback = ec2->spot_fallback;
        settings.missing_timeout = ec2->missing_timeout;
        settings.idle_timeout = ec2->build_wait_timeout;
        settings.max_lifetime = ec2->max_lifetime;
        // A stopped instance's worker logs in again with the secret it keeps on disk
        // (ci-worker start --secret-state); its key stays in the store while it is stopped.
        settings.stop_when_idle = ec2->idle_action == config::Ec2Workers::IdleAction::Stop;
        settings.stopped_max = ec2->stopped_max;
        classes.emplace(name, settings);
    }
    return classes;
}

LatentPool::LatentPool(std::map<std::string, PoolClass> classes, PoolRandom random)
    : classes_(std::move(classes)), random_(std::move(random)) {}

void LatentPool::restore(std::vector<PoolInstance> stored, WallTime now) {
    for (auto& instance : stored) {
        if (instance.state == InstanceState::Terminated) {
            continue;
        }
        if (!instance.orphaned && instance.connected_once) {
            instance.disconnected_at = now;
        }
        ++instance.version;
        instances_.push_back(std::move(instance));
    }
}

PoolInstance* LatentPool::find_worker_mut(const std::string& worker) {
    const auto found = std::ranges::find(instances_, worker, &PoolInstance::worker);
    return found == instances_.end() ? nullptr : &*found;
}

const PoolInstance* LatentPool::find_worker(const std::string& worker) const {
    const auto found = std::ranges::find(instances_, worker, &PoolInstance::worker);
    return found == instances_.end() ? nullptr : &*found;
}

PoolInstance* LatentPool::find_id(const std::string& instance_id) {
    if (instance_id.empty()) {
        return nullptr;
    }
    const auto found = std::ranges::find(instances_, instance_id, &PoolInstance::instance_id);
    return found == instances_.end() ? nullptr : &*found;
}

void LatentPool::change(PoolInstance& instance, InstanceState state) {
    if (instance.state != state) {
        instance.state = state;
        ++instance.version;
    }
}

std::optional<WallTime> LatentPool::launch_held_until(const std::string& worker_class) const {
    const auto found = class_state_.find(worker_class);
    if (found == class_state_.end()) {
        return std::nullopt;
    }
    return found->second.next_launch;
}

// Ends an instance: stopped when the class keeps idle instances and has room among its
// stopped ones (`may_stop`), else terminated. An intent with no instance yet cannot be ended
// by id: reconcile finds it by its tag.
void LatentPool::end(PoolInstance& instance,
                     const PoolClass& settings,
                     bool may_stop,
                     const std::string& reason,
                     WallTime now,
                     std::vector<PoolAction>& actions) {
    if (instance.instance_id.empty()) {
        return;
    }
    if (!instance.worker.empty() && !instance.orphaned) {
        actions.emplace_back(DrainAction{instance.worker});
    }
    const auto stopped = std::ranges::count_if(instances_, [&](const PoolInstance& other) {
        return other.worker_class == instance.worker_class &&
               (other.state == InstanceState::Stopped || other.state == InstanceState::Stopping);
    });
    instance.ended_at = now;
    ++instance.version;
    // A spot instance cannot be stopped (a one-time request): it is terminated.
    if (may_stop && settings.stop_when_idle && instance.market == Market::OnDemand &&
        stopped < settings.stopped_max) {
        change(instance, InstanceState::Stopping);
        actions.emplace_back(StopAction{instance.instance_id, instance.worker});
        return;
    }
    change(instance, InstanceState::Terminating);
    actions.emplace_back(TerminateAction{{instance.instance_id}, reason});
}

void LatentPool::check_instance(PoolInstance& instance,
                                const PoolView& view,
                                WallTime now,
                                std::vector<PoolAction>& actions) {
    if (instance.state == InstanceState::Terminating) {
        if (instance.ended_at && now - *instance.ended_at >= resend_after &&
            !instance.instance_id.empty()) {
            actions.emplace_back(
                AlertAction{fmt::format("instance {} (worker {}) was asked to terminate at {} s "
                                        "ago and EC2 still lists it; terminating it again",
                                        instance.instance_id,
                                        instance.worker,
                                        seconds_between(*instance.ended_at, now))});
            instance.ended_at = now;
            ++instance.version;
            actions.emplace_back(
                TerminateAction{{instance.instance_id}, "a termination not yet seen"});
        }
        return;
    }
    const auto settings_found = classes_.find(instance.worker_class);
    if (instance.orphaned || settings_found == classes_.end()) {
        if (instance.state == InstanceState::Launching) {
            return; // no id yet: reconcile finds it by its tag, or forgets it
        }
        if (active(instance.state) || instance.state == InstanceState::Stopped ||
            instance.state == InstanceState::Stopping) {
            end(instance,
                PoolClass{},
                false,
                settings_found == classes_.end()
                    ? fmt::format("class {} is no longer in the config", instance.worker_class)
                    : "left by a previous run of the master (its worker cannot log in again)",
                now,
                actions);
        }
        return;
    }
    const PoolClass& settings = settings_found->second;
    switch (instance.state) {
    case InstanceState::Stopping:
        // Verified like a termination: reconcile() moves it to Stopped when EC2 says so.
        if (instance.ended_at && now - *instance.ended_at >= resend_after) {
            actions.emplace_back(AlertAction{fmt::format(
                "instance {} (worker {}) was asked to stop {} s ago and EC2 does not list it "
                "stopped; terminating it",
                instance.instance_id,
                instance.worker,
                seconds_between(*instance.ended_at, now))});
            end(instance, settings, false, "its stop was not seen", now, actions);
        }
        return;
    case InstanceState::Stopped:
        if (settings.max_lifetime && now - instance.launched >= *settings.max_lifetime) {
            end(instance, settings, false, "past its max_lifetime while stopped", now, actions);
        }
        return;
    case InstanceState::Launching:
    case InstanceState::Terminated:
    case InstanceState::Terminating: // handled above
        return;
    case InstanceState::Pending:
    case InstanceState::Running:
        break;
    }
    const auto connected = view.connected.find(instance.worker);
    if (connected != view.connected.end()) {
        if (!instance.connected_once || instance.disconnected_at) {
            instance.connected_once = true;
            instance.disconnected_at.reset();
            instance.busy_at = now; // idleness counts from the (re)connection
            ++instance.version;
        }
        if (connected->second > 0) {
            instance.busy_at = now; // not stored each tick: only idleness needs it
        }
        if (settings.max_lifetime && now - instance.launched >= *settings.max_lifetime) {
            if (!instance.draining) {
                instance.draining = true;
                ++instance.version;
                actions.emplace_back(DrainAction{instance.worker});
            }
            if (connected->second == 0) {
                end(instance, settings, false, "past its max_lifetime", now, actions);
            }
            return;
        }
        if (connected->second == 0 && instance.busy_at &&
            now - *instance.busy_at >= settings.idle_timeout) {
            end(instance,
                settings,
                true,
                fmt::format("idle for {} s (build_wait_timeout)", settings.idle_timeout.count()),
                now,
                actions);
        }
        return;
    }
    if (!instance.connected_once) {
        if (now - instance.started_at.value_or(instance.launched) >= settings.missing_timeout) {
            actions.emplace_back(AlertAction{
                fmt::format("instance {} (worker {}) never connected within {} s of its {}; "
                            "terminating it",
                            instance.instance_id,
                            instance.worker,
                            settings.missing_timeout.count(),
                            instance.started_at ? "start (it had been stopped)" : "launch")});
            end(instance, settings, false, "never connected (missing_timeout)", now, actions);
        }
        return;
    }
    if (!instance.disconnected_at) {
        instance.disconnected_at = now;
        ++instance.version;
    }
    if (now - *instance.disconnected_at >= settings.missing_timeout) {
        actions.emplace_back(LostAction{instance.worker, "its worker did not come back"});
        end(instance,
            settings,
            false,
            "its worker's connection dropped and did not come back (missing_timeout)",
            now,
            actions);
    }
}

void LatentPool::launch_for_demand(const std::string& name,
                                   const PoolClass& settings,
                                   const PoolView& view,
                                   WallTime now,
                                   std::vector<PoolAction>& actions) {
    const auto waiting_found = view.waiting.find(name);
    const int waiting = waiting_found == view.waiting.end() ? 0 : waiting_found->second;
    if (waiting <= 0) {
        return;
    }
    int running = 0;
    int coming = 0; // slots of instances whose worker has not connected yet
    for (const auto& instance : instances_) {
        if (instance.worker_class != name || instance.orphaned) {
            continue;
        }
        if (active(instance.state)) {
            ++running;
            if (!view.connected.contains(instance.worker)) {
                coming += settings.max_builds;
            }
        }
    }
    const int uncovered = waiting - coming;
    if (uncovered <= 0) {
        return;
    }
    int wanted = (uncovered + settings.max_builds - 1) / settings.max_builds;
    wanted = std::min(wanted, settings.max_instances - running);
    if (wanted <= 0) {
        return;
    }
    // Stopped instances first: their disks are warm and they start in seconds. The most
    // recently stopped first: its git mirrors and caches are the newest, and the least
    // recently stopped are the first trim_stopped() terminates.
    std::vector<PoolInstance*> stopped;
    for (auto& instance : instances_) {
        if (instance.worker_class == name && !instance.orphaned &&
            instance.state == InstanceState::Stopped) {
            stopped.push_back(&instance);
        }
    }
    std::ranges::stable_sort(stopped, [](const PoolInstance* a, const PoolInstance* b) {
        return a->ended_at.value_or(WallTime{}) > b->ended_at.value_or(WallTime{});
    });
    for (auto* instance : stopped) {
        if (wanted == 0) {
            return;
        }
        mark_started(*instance, now);
        actions.emplace_back(StartAction{instance->instance_id, instance->worker});
        --wanted;
    }
    auto& state = class_state_[name];
    if (state.next_launch && now < *state.next_launch) {
        return;
    }
    const bool spot = settings.spot && !(state.on_demand_until && now < *state.on_demand_until);
    for (; wanted > 0; --wanted) {
        PoolInstance instance;
        instance.worker = fmt::format("{}/{}", name, random_.token());
        instance.worker_class = name;
        instance.client_token = random_.token();
        instance.instance_type = settings.instance_type;
        instance.market = spot ? Market::Spot : Market::OnDemand;
        instance.launched = now;
        instance.version = 1;
        actions.emplace_back(
            LaunchAction{name, instance.worker, instance.client_token, instance.market});
        instances_.push_back(std::move(instance));
    }
}

// A class keeps at most stopped_max stopped (or stopping) instances, none once it no longer
// stops idle ones: the least recently stopped beyond that are terminated.
void LatentPool::trim_stopped(const std::string& name,
                              const PoolClass& settings,
                              WallTime now,
                              std::vector<PoolAction>& actions) {
    const int limit = settings.stop_when_idle ? settings.stopped_max : 0;
    int kept = 0;
    std::vector<PoolInstance*> stopped;
    for (auto& instance : instances_) {
        if (instance.worker_class != name || instance.orphaned) {
            continue;
        }
        if (instance.state == InstanceState::Stopping) {
            ++kept;
        } else if (instance.state == InstanceState::Stopped) {
            ++kept;
            stopped.push_back(&instance);
        }
    }
    std::ranges::stable_sort(stopped, [](const PoolInstance* a, const PoolInstance* b) {
        return a->ended_at.value_or(WallTime{}) < b->ended_at.value_or(WallTime{});
    });
    for (auto* instance : stopped) {
        if (kept <= limit) {
            return;
        }
        end(*instance,
            settings,
            false,
            fmt::format("class {} keeps at most {} stopped instance(s)", name, limit),
            now,
            actions);
        --kept;
    }
}

void LatentPool::account(WallTime now) {
    if (accounted_at_ && now > *accounted_at_) {
        const double seconds = std::chrono::duration<double>(now - *accounted_at_).count();
        for (const auto& instance : instances_) {
            // What EC2 bills: from pending until the instance stops or terminates.
            if (instance.state == InstanceState::Pending ||
                instance.state == InstanceState::Running ||
                instance.state == InstanceState::Stopping ||
                instance.state == InstanceState::Terminating) {
                seconds_[{instance.worker_class, instance.market}] += seconds;
            }
        }
    }
    if (!accounted_at_ || now > *accounted_at_) {
        accounted_at_ = now;
    }
}

std::vector<PoolAction> LatentPool::tick(const PoolView& view, WallTime now) {
    account(now);
    std::vector<PoolAction> actions;
    for (auto& instance : instances_) {
        check_instance(instance, view, now, actions);
    }
    for (const auto& [name, settings] : classes_) {
        launch_for_demand(name, settings, view, now, actions);
        trim_stopped(name, settings, now, actions);
    }
    return actions;
}

void LatentPool::launched(const std::string& worker,
                          const std::string& instance_id,
                          bool spot,
                          WallTime /*now*/) {
    auto* instance = find_worker_mut(worker);
    if (instance == nullptr) {
        return;
    }
    instance->instance_id = instance_id;
    instance->market = spot ? Market::Spot : Market::OnDemand;
    ++instance->version;
    if (instance->state == InstanceState::Launching) {
        change(*instance, InstanceState::Pending);
    }
    auto& state = class_state_[instance->worker_class];
    state.failures = 0;
    state.next_launch.reset();
}

std::vector<PoolAction> LatentPool::launch_failed(const std::string& worker,
                                                  LaunchFailure failure,
                                                  const std::string& error,
                                                  WallTime now) {
    std::vector<PoolAction> actions;
    auto* instance = find_worker_mut(worker);
    if (instance == nullptr) {
        return actions;
    }
    const std::string worker_class = instance->worker_class;
    const bool was_spot = instance->market == Market::Spot;
    auto& state = class_state_[worker_class];
    ++state.failures;
    const auto delay = backoff_delay(state.failures);
    // Equal jitter: never less than half the delay, so that a burst of masters spreads out
    // without any retrying at once.
    const auto jittered = std::chrono::duration_cast<std::chrono::milliseconds>(
        delay / 2 + std::chrono::duration<double>(delay) * (random_.uniform() / 2));
    state.next_launch = now + jittered;
    std::string also;
    const auto settings = classes_.find(worker_class);
    if (failure == LaunchFailure::Capacity && was_spot && settings != classes_.end() &&
        settings->second.spot_fallback) {
        state.on_demand_until = now + spot_pause;
        // Capacity is not a fault of ours: the on-demand launch need not wait.
        state.next_launch = now;
        state.failures = 0;
        also = "; launching on-demand instead for the next 10 minutes (spot_fallback)";
    }
    if (failure == LaunchFailure::Unknown) {
        // The instance may exist: the intent stays until reconcile finds it or launch_grace
        // has passed.
        actions.emplace_back(AlertAction{fmt::format(
            "launch of worker {} got no answer ({}); reconcile will find or forget it{}",
            worker,
            error,
            also)});
        return actions;
    }
    change(*instance, InstanceState::Terminated);
    actions.emplace_back(AlertAction{fmt::format(
        "launch of worker {} failed: {}; next launch of {} in {} ms at the earliest{}",
        worker,
        error,
        worker_class,
        std::chrono::duration_cast<std::chrono::milliseconds>(*state.next_launch - now).count(),
        also)});
    return actions;
}

std::vector<PoolAction> LatentPool::end_failed(const std::vector<std::string>& instance_ids,
                                               WallTime now) {
    std::vector<PoolAction> actions;
    for (const auto& id : instance_ids) {
        auto* instance = find_id(id);
        if (instance == nullptr) {
            continue;
        }
        if (instance->state == InstanceState::Stopping) {
            // Its worker was drained and it is idle: terminated rather than left running.
            instance->ended_at = now;
            change(*instance, InstanceState::Terminating);
            actions.emplace_back(TerminateAction{{id}, "its stop failed"});
            continue;
        }
        // Tried again by the next tick: its end is due at once.
        instance->ended_at = WallTime{};
        ++instance->version;
    }
    return actions;
}

std::vector<PoolAction> LatentPool::start_failed(const std::string& instance_id,
                                                 LaunchFailure failure,
                                                 const std::string& error,
                                                 WallTime now) {
    std::vector<PoolAction> actions;
    auto* instance = find_id(instance_id);
    if (instance == nullptr || instance->state != InstanceState::Pending) {
        return actions;
    }
    if (failure == LaunchFailure::Unknown) {
        actions.emplace_back(AlertAction{
            fmt::format("start of instance {} (worker {}) got no answer ({}); its worker has "
                        "missing_timeout to connect",
                        instance_id,
                        instance->worker,
                        error)});
        return actions;
    }
    actions.emplace_back(
        AlertAction{fmt::format("start of instance {} (worker {}) failed: {}; terminating it",
                                instance_id,
                                instance->worker,
                                error)});
    instance->ended_at = now;
    change(*instance, InstanceState::Terminating);
    actions.emplace_back(TerminateAction{{instance_id}, "its start failed"});
    return actions;
}

std::vector<PoolAction> LatentPool::reconcile(const std::vector<ObservedInstance>& observed,
                                              WallTime now) {
    std::vector<PoolAction> actions;
    std::set<std::string> seen;
    std::vector<std::string> orphans;
    std::vector<PoolInstance> adopted;
    for (const auto& found : observed) {
        const auto ec2_state = from_ec2(found.state);
        PoolInstance* instance = find_id(found.instance_id);
        if (instance == nullptr && !found.worker.empty()) {
            // An intent whose RunInstances answer was lost (or a master killed before it
            // stored the id): its tag names the worker.
            auto* intent = find_worker_mut(found.worker);
            if (intent != nullptr && intent->instance_id.empty()) {
                intent->instance_id = found.instance_id;
                intent->market = found.spot ? Market::Spot : Market::OnDemand;
                ++intent->version;
                if (intent->state == InstanceState::Launching) {
                    change(*intent, InstanceState::Pending);
                }
                instance = intent;
            }
        }
        if (instance == nullptr) {
            if (ec2_state && *ec2_state != InstanceState::Terminated &&
                *ec2_state != InstanceState::Terminating) {
                orphans.push_back(found.instance_id);
                // Kept (and stored) until its termination is seen, as the pool's own are.
                PoolInstance orphan;
                orphan.worker = found.worker;
                orphan.worker_class = found.worker_class;
                orphan.instance_id = found.instance_id;
                orphan.client_token = "adopted-" + found.instance_id; // its key in the store
                orphan.market = found.spot ? Market::Spot : Market::OnDemand;
                orphan.state = InstanceState::Terminating;
                orphan.launched = now;
                orphan.ended_at = now;
                orphan.orphaned = true;
                orphan.version = 1;
                adopted.push_back(std::move(orphan));
                seen.insert(found.instance_id);
            }
            continue;
        }
        seen.insert(found.instance_id);
        if (!ec2_state) {
            continue;
        }
        switch (*ec2_state) {
        case InstanceState::Terminated:
            if (instance->state != InstanceState::Terminating && !instance->orphaned) {
                actions.emplace_back(LostAction{instance->worker,
                                                "EC2 terminated its instance (a spot "
                                                "interruption, or someone else)"});
                actions.emplace_back(AlertAction{
                    fmt::format("instance {} (worker {}) was terminated without the master asking",
                                instance->instance_id,
                                instance->worker)});
            }
            change(*instance, InstanceState::Terminated);
            break;
        case InstanceState::Terminating:
            if (instance->state != InstanceState::Terminating) {
                if (!instance->orphaned) {
                    actions.emplace_back(
                        LostAction{instance->worker,
                                   "EC2 is shutting its instance down (a spot interruption?)"});
                }
                instance->ended_at = now;
                change(*instance, InstanceState::Terminating);
            }
            break;
        case InstanceState::Stopped:
            if (instance->state == InstanceState::Stopping ||
                instance->state == InstanceState::Stopped) {
                change(*instance, InstanceState::Stopped);
            } else if (instance->state == InstanceState::Pending && instance->started_at &&
                       !instance->connected_once) {
                // Started by the pool: EC2 may list it stopped for a moment; not after
                // launch_grace.
                if (now - *instance->started_at >= launch_grace) {
                    actions.emplace_back(AlertAction{
                        fmt::format("instance {} (worker {}) was started {} s ago and EC2 still "
                                    "lists it stopped; terminating it",
                                    instance->instance_id,
                                    instance->worker,
                                    seconds_between(*instance->started_at, now))});
                    instance->ended_at = now;
                    change(*instance, InstanceState::Terminating);
                    actions.emplace_back(
                        TerminateAction{{instance->instance_id}, "started, but still stopped"});
                }
            } else if (instance->state != InstanceState::Terminating) {
                // Stopped by someone else (or a spot stop): not something the pool can use
                // with confidence; ended.
                if (!instance->orphaned) {
                    actions.emplace_back(LostAction{instance->worker, "its instance stopped"});
                }
                instance->ended_at = now;
                change(*instance, InstanceState::Terminating);
                actions.emplace_back(
                    TerminateAction{{instance->instance_id}, "stopped without being asked"});
            }
            break;
        case InstanceState::Pending:
        case InstanceState::Running:
            if (instance->state == InstanceState::Stopped && !instance->orphaned) {
                // Started by someone else: its worker boots and logs in, or missing_timeout
                // ends it, as for a start of the pool's own.
                mark_started(*instance, now);
            } else if (instance->state == InstanceState::Launching) {
                change(*instance, *ec2_state);
            } else if (instance->state == InstanceState::Pending &&
                       *ec2_state == InstanceState::Running) {
                change(*instance, InstanceState::Running);
            }
            break;
        case InstanceState::Stopping:
        case InstanceState::Launching:
            break;
        }
    }
    for (auto& instance : instances_) {
        if (instance.state == InstanceState::Terminated || seen.contains(instance.instance_id)) {
            continue;
        }
        if (instance.instance_id.empty()) {
            if (now - instance.launched >= launch_grace) {
                // No instance carries its tag: the launch made none.
                change(instance, InstanceState::Terminated);
            }
            continue;
        }
        if (instance.state == InstanceState::Terminating) {
            change(instance, InstanceState::Terminated); // EC2 no longer lists it
        } else if (now - instance.launched >= launch_grace) {
            if (!instance.orphaned) {
                actions.emplace_back(
                    LostAction{instance.worker, "EC2 no longer lists its instance"});
                actions.emplace_back(AlertAction{fmt::format(
                    "instance {} (worker {}) ended without the master asking (EC2 no longer "
                    "lists it)",
                    instance.instance_id,
                    instance.worker)});
            }
            change(instance, InstanceState::Terminated);
        }
    }
    for (auto& orphan : adopted) {
        instances_.push_back(std::move(orphan));
    }
    if (!orphans.empty()) {
        actions.emplace_back(AlertAction{
            fmt::format("{} tagged instance(s) this master does not know: terminating {}",
                        orphans.size(),
                        fmt::join(orphans, ", "))});
        actions.emplace_back(TerminateAction{std::move(orphans), "unknown to this master"});
    }
    return actions;
}

void LatentPool::forget_terminated() {
    std::erase_if(instances_, [](const PoolInstance& instance) {
        return instance.state == InstanceState::Terminated;
    });
}

} // namespace ci::master
