#include <algorithm>
#include <string>
#include <variant>
#include <vector>

#include <doctest/doctest.h>

#include "master/latent_pool.h"

using ci::WallTime;
using ci::master::AlertAction;
using ci::master::DrainAction;
using ci::master::InstanceState;
using ci::master::LatentPool;
using ci::master::LaunchAction;
using ci::master::LaunchFailure;
using ci::master::LostAction;
using ci::master::Market;
using ci::master::PoolAction;
using ci::master::PoolClass;
using ci::master::PoolInstance;
using ci::master::PoolView;
using ci::master::StartAction;
using ci::master::StopAction;
using ci::master::TerminateAction;
using std::chrono::minutes;
using std::chrono::seconds;

namespace {

const WallTime t0 = WallTime{} + std::chrono::hours(24 * 365 * 50);

// Deterministic names ("w1", "w2", ...) and a fixed jitter draw.
struct Fixture {
    int counter = 0;
    double draw = 0.5;
    PoolClass settings;
    std::map<std::string, PoolClass> classes() const { return {{"aws", settings}}; }
    LatentPool make() {
        return LatentPool(
            classes(),
            {[this] { return "w" + std::to_string(++counter); }, [this] { return draw; }});
    }
};

template <typename T> std::vector<T> of(const std::vector<PoolAction>& actions) {
    std::vector<T> out;
    for (const auto& action : actions) {
        if (const auto* typed = std::get_if<T>(&action)) {
            out.push_back(*typed);
        }
    }
    return out;
}

PoolView waiting(int n) {
    PoolView view;
    view.waiting["aws"] = n;
    return view;
}

PoolView connected(const std::string& worker, int builds, int waiting_requests = 0) {
    PoolView view;
    view.connected[worker] = builds;
    view.waiting["aws"] = waiting_requests;
    return view;
}

// Launches one instance and has EC2 answer with `id`; returns its worker name.
std::string launch_one(LatentPool& pool, const std::string& id, WallTime now) {
    const auto launches = of<LaunchAction>(pool.tick(waiting(1), now));
    REQUIRE(launches.size() == 1);
    pool.launched(launches[0].worker, id, false, now);
    return launches[0].worker;
}

const PoolInstance& instance_of(const LatentPool& pool, const std::string& worker) {
    const auto* found = pool.find_worker(worker);
    REQUIRE(found != nullptr);
    return *found;
}

} // namespace

TEST_CASE("latent pool: a waiting request launches one instance, recorded before the call") {
    Fixture f;
    f.settings.max_instances = 3;
    f.settings.instance_type = "c5.large";
    auto pool = f.make();
    CHECK(pool.tick(PoolView{}, t0).empty());
    const auto launches = of<LaunchAction>(pool.tick(waiting(1), t0));
    REQUIRE(launches.size() == 1);
    CHECK(launches[0].worker_class == "aws");
    CHECK(launches[0].worker == "aws/w1");
    CHECK(launches[0].client_token == "w2");
    CHECK(launches[0].market == Market::OnDemand);
    // The intent exists before any answer: what the shell stores before RunInstances.
    const auto& intent = instance_of(pool, "aws/w1");
    CHECK(intent.state == InstanceState::Launching);
    CHECK(intent.instance_id.empty());
    CHECK(intent.client_token == "w2");
    CHECK(intent.instance_type == "c5.large");
    CHECK(intent.version > 0);
    // The same request waiting again is covered by the instance on its way.
    CHECK(of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(1))).empty());
    pool.launched("aws/w1", "i-1", false, t0 + seconds(2));
    CHECK(instance_of(pool, "aws/w1").state == InstanceState::Pending);
    CHECK(instance_of(pool, "aws/w1").instance_id == "i-1");
    CHECK(of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(3))).empty());
    // A second request needs a second instance (max_builds 1).
    CHECK(of<LaunchAction>(pool.tick(waiting(2), t0 + seconds(4))).size() == 1);
}

TEST_CASE("latent pool: capacity: slaves caps instances, max_builds packs requests") {
    Fixture f;
    f.settings.max_instances = 2;
    f.settings.max_builds = 3;
    auto pool = f.make();
    // 7 requests need 3 instances of 3 slots; only 2 are allowed.
    CHECK(of<LaunchAction>(pool.tick(waiting(7), t0)).size() == 2);
    CHECK(of<LaunchAction>(pool.tick(waiting(7), t0 + seconds(1))).empty());
    Fixture g;
    g.settings.max_instances = 10;
    g.settings.max_builds = 3;
    auto packed = g.make();
    CHECK(of<LaunchAction>(packed.tick(waiting(4), t0)).size() == 2); // ceil(4 / 3)
    // Once an instance's worker is connected, its slots are the dispatcher's business: only
    // what still waits counts.
    auto view = waiting(1);
    view.connected["aws/w1"] = 3;
    view.connected["aws/w3"] = 3;
    CHECK(of<LaunchAction>(packed.tick(view, t0 + seconds(1))).size() == 1);
}

TEST_CASE("latent pool: spot when priced, on-demand after no capacity only with spot_fallback") {
    Fixture f;
    f.settings.max_instances = 5;
    f.settings.spot = true;
    SUBCASE("without fallback: backoff, still spot") {
        auto pool = f.make();
        auto launch = of<LaunchAction>(pool.tick(waiting(1), t0));
        REQUIRE(launch.size() == 1);
        CHECK(launch[0].market == Market::Spot);
        const auto alerts = of<AlertAction>(pool.launch_failed(
            launch[0].worker, LaunchFailure::Capacity, "InsufficientInstanceCapacity", t0));
        REQUIRE(alerts.size() == 1);
        CHECK(alerts[0].message.find("InsufficientInstanceCapacity") != std::string::npos);
        CHECK(instance_of(pool, launch[0].worker).state == InstanceState::Terminated);
        CHECK(of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(1))).empty());
        launch = of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(10)));
        REQUIRE(launch.size() == 1);
        CHECK(launch[0].market == Market::Spot);
    }
    SUBCASE("with fallback: on-demand at once, spot again after the pause") {
        f.settings.spot_fallback = true;
        auto pool = f.make();
        auto launch = of<LaunchAction>(pool.tick(waiting(1), t0));
        (void)pool.launch_failed(
            launch[0].worker, LaunchFailure::Capacity, "InsufficientInstanceCapacity", t0);
        launch = of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(1)));
        REQUIRE(launch.size() == 1);
        CHECK(launch[0].market == Market::OnDemand);
        pool.launched(launch[0].worker, "i-od", false, t0 + seconds(1));
        CHECK(instance_of(pool, launch[0].worker).market == Market::OnDemand);
        launch = of<LaunchAction>(pool.tick(waiting(2), t0 + LatentPool::spot_pause + seconds(2)));
        REQUIRE(launch.size() == 1);
        CHECK(launch[0].market == Market::Spot);
    }
    SUBCASE("a throttled spot launch does not fall back") {
        f.settings.spot_fallback = true;
        auto pool = f.make();
        auto launch = of<LaunchAction>(pool.tick(waiting(1), t0));
        (void)pool.launch_failed(
            launch[0].worker, LaunchFailure::Throttled, "RequestLimitExceeded", t0);
        launch = of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(60)));
        REQUIRE(launch.size() == 1);
        CHECK(launch[0].market == Market::Spot);
    }
}

TEST_CASE("latent pool: launch failures back off 10 s doubling to 240 s, with jitter") {
    Fixture f;
    f.settings.max_instances = 5;
    for (const double draw : {0.0, 0.5, 0.999}) {
        CAPTURE(draw);
        f.draw = draw;
        auto pool = f.make();
        auto now = t0;
        std::vector<double> delays;
        for (int failure = 1; failure <= 7; ++failure) {
            auto launch = of<LaunchAction>(pool.tick(waiting(1), now));
            REQUIRE(launch.size() == 1);
            (void)pool.launch_failed(
                launch[0].worker, LaunchFailure::Throttled, "RequestLimitExceeded", now);
            const auto until = pool.launch_held_until("aws");
            REQUIRE(until.has_value());
            const double delay = std::chrono::duration<double>(*until - now).count();
            delays.push_back(delay);
            // Nothing launches before the delay, something right after.
            CHECK(of<LaunchAction>(pool.tick(waiting(1), *until - std::chrono::milliseconds(1)))
                      .empty());
            now = *until;
        }
        const std::vector<double> base{10, 20, 40, 80, 160, 240, 240};
        for (std::size_t i = 0; i < base.size(); ++i) {
            CAPTURE(i);
            CHECK(delays[i] >= base[i] / 2);
            CHECK(delays[i] <= base[i]);
            CHECK(delays[i] == doctest::Approx(base[i] / 2 + base[i] / 2 * draw).epsilon(0.01));
        }
        // A success resets the backoff.
        auto launch = of<LaunchAction>(pool.tick(waiting(1), now));
        REQUIRE(launch.size() == 1);
        pool.launched(launch[0].worker, "i-ok", false, now);
        CHECK_FALSE(pool.launch_held_until("aws").has_value());
    }
}

TEST_CASE("latent pool: missing_timeout ends an instance whose worker never connected") {
    Fixture f;
    f.settings.missing_timeout = minutes(20);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    CHECK(pool.tick(PoolView{}, t0 + minutes(19)).empty());
    const auto actions = pool.tick(PoolView{}, t0 + minutes(20));
    const auto terminations = of<TerminateAction>(actions);
    REQUIRE(terminations.size() == 1);
    CHECK(terminations[0].instance_ids == std::vector<std::string>{"i-1"});
    const auto alerts = of<AlertAction>(actions);
    REQUIRE(alerts.size() == 1);
    CHECK(alerts[0].message.find("never connected") != std::string::npos);
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
    // Not asked twice while the termination is under way.
    CHECK(of<TerminateAction>(pool.tick(PoolView{}, t0 + minutes(21))).empty());
}

TEST_CASE("latent pool: idle instances end after build_wait_timeout; builds keep them") {
    Fixture f;
    f.settings.idle_timeout = seconds(3000);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    CHECK(pool.tick(connected(worker, 0), t0 + seconds(100)).empty());
    CHECK(instance_of(pool, worker).connected_once);
    // A build at 1000 s restarts the count.
    CHECK(pool.tick(connected(worker, 1), t0 + seconds(1000)).empty());
    CHECK(pool.tick(connected(worker, 0), t0 + seconds(3999)).empty());
    const auto actions = pool.tick(connected(worker, 0), t0 + seconds(4000));
    const auto ends = of<TerminateAction>(actions);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].reason.find("idle") != std::string::npos);
    // Drained first, so that no build is sent to it meanwhile.
    REQUIRE(of<DrainAction>(actions).size() == 1);
    CHECK(of<DrainAction>(actions)[0].worker == worker);
    CHECK(of<AlertAction>(actions).empty()); // an idle end is normal, not an operational error
}

TEST_CASE("latent pool: a worker that drops is given missing_timeout to come back") {
    Fixture f;
    f.settings.missing_timeout = minutes(5);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    CHECK(pool.tick(connected(worker, 1), t0 + minutes(1)).empty());
    CHECK(pool.tick(PoolView{}, t0 + minutes(2)).empty()); // dropped
    CHECK(pool.tick(PoolView{}, t0 + minutes(6)).empty());
    // It came back in time: counted from zero again.
    CHECK(pool.tick(connected(worker, 0), t0 + minutes(6) + seconds(30)).empty());
    CHECK(pool.tick(PoolView{}, t0 + minutes(8)).empty());
    const auto actions = pool.tick(PoolView{}, t0 + minutes(13));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    REQUIRE(of<LostAction>(actions).size() == 1);
    CHECK(of<LostAction>(actions)[0].worker == worker);
}

TEST_CASE("latent pool: max_lifetime drains the worker and ends it when idle") {
    Fixture f;
    f.settings.max_lifetime = std::chrono::hours(6);
    f.settings.idle_timeout = std::chrono::hours(100);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    (void)pool.tick(connected(worker, 1), t0 + minutes(1));
    auto actions = pool.tick(connected(worker, 1), t0 + std::chrono::hours(6));
    CHECK(of<DrainAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions).empty()); // its build finishes first
    CHECK(pool.tick(connected(worker, 1), t0 + std::chrono::hours(7)).empty());
    actions = pool.tick(connected(worker, 0), t0 + std::chrono::hours(7) + seconds(1));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].reason.find("max_lifetime") != std::string::npos);
}

TEST_CASE("latent pool: idle_action stop keeps up to stopped_max, started again when needed") {
    Fixture f;
    f.settings.max_instances = 3;
    f.settings.stop_when_idle = true;
    f.settings.stopped_max = 1;
    f.settings.idle_timeout = seconds(60);
    auto pool = f.make();
    auto launches = of<LaunchAction>(pool.tick(waiting(2), t0));
    REQUIRE(launches.size() == 2);
    pool.launched(launches[0].worker, "i-1", false, t0);
    pool.launched(launches[1].worker, "i-2", false, t0);
    PoolView both;
    both.connected[launches[0].worker] = 0;
    both.connected[launches[1].worker] = 0;
    (void)pool.tick(both, t0 + seconds(1));
    const auto actions = pool.tick(both, t0 + seconds(61));
    // One stopped (room for one), the other terminated.
    REQUIRE(of<StopAction>(actions).size() == 1);
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<StopAction>(actions)[0].instance_id == "i-1");
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-2"});
    (void)pool.reconcile({{"i-1", "stopped", "aws", launches[0].worker, false},
                          {"i-2", "terminated", "aws", launches[1].worker, false}},
                         t0 + seconds(90));
    CHECK(instance_of(pool, launches[0].worker).state == InstanceState::Stopped);
    CHECK(instance_of(pool, launches[1].worker).state == InstanceState::Terminated);
    pool.forget_terminated();
    CHECK(pool.instances().size() == 1);
    // A new request starts the stopped one instead of launching.
    const auto next = pool.tick(waiting(1), t0 + seconds(100));
    REQUIRE(of<StartAction>(next).size() == 1);
    CHECK(of<StartAction>(next)[0].instance_id == "i-1");
    CHECK(of<LaunchAction>(next).empty());
    CHECK(instance_of(pool, launches[0].worker).state == InstanceState::Pending);
}

namespace {

// A pool whose class stops idle instances (idle 60 s, missing_timeout 5 min).
Fixture stopping_fixture(int stopped_max) {
    Fixture f;
    f.settings.max_instances = 5;
    f.settings.stop_when_idle = true;
    f.settings.stopped_max = stopped_max;
    f.settings.idle_timeout = seconds(60);
    f.settings.missing_timeout = std::chrono::hours(1);
    return f;
}

// Launches n instances at once ("i-1", "i-2", ...); returns their workers.
std::vector<std::string> launch_n(LatentPool& pool, int n, WallTime now) {
    const auto launches = of<LaunchAction>(pool.tick(waiting(n), now));
    REQUIRE(launches.size() == static_cast<std::size_t>(n));
    std::vector<std::string> workers;
    for (std::size_t i = 0; i < launches.size(); ++i) {
        pool.launched(launches[i].worker, "i-" + std::to_string(i + 1), false, now);
        workers.push_back(launches[i].worker);
    }
    return workers;
}

// Connects `worker` (instance `id`) 61 s before `at`, idle: stopped at `at`, and EC2 says so.
void stop_idle(LatentPool& pool, const std::string& worker, const std::string& id, WallTime at) {
    (void)pool.tick(connected(worker, 0), at - seconds(61));
    const auto actions = pool.tick(connected(worker, 0), at);
    REQUIRE(of<StopAction>(actions).size() == 1);
    CHECK(of<StopAction>(actions)[0].instance_id == id);
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(of<LostAction>(actions).empty()); // its credentials stay: it logs in again
    CHECK(instance_of(pool, worker).state == InstanceState::Stopping);
    // EC2 lists it stopped, and the pool's other instances as they are.
    std::vector<ci::master::ObservedInstance> observed;
    for (const auto& instance : pool.instances()) {
        if (instance.instance_id.empty() || instance.state == InstanceState::Terminated ||
            instance.state == InstanceState::Terminating) {
            continue;
        }
        const bool stopped = instance.instance_id == id || instance.state == InstanceState::Stopped;
        observed.push_back(
            {instance.instance_id, stopped ? "stopped" : "running", "aws", instance.worker, false});
    }
    CHECK(pool.reconcile(observed, at + seconds(1)).empty());
    CHECK(instance_of(pool, worker).state == InstanceState::Stopped);
}

// Launches "i-1" 100 s before `at`, stopped at `at`; returns its worker.
std::string stopped_one(LatentPool& pool, WallTime at) {
    auto worker = launch_n(pool, 1, at - seconds(100)).at(0);
    stop_idle(pool, worker, "i-1", at);
    return worker;
}

} // namespace

TEST_CASE("latent pool: beyond stopped_max, the next idle instance is terminated") {
    auto f = stopping_fixture(1);
    auto pool = f.make();
    const auto workers = launch_n(pool, 2, t0);
    const auto& first = workers[0];
    const auto& second = workers[1];
    stop_idle(pool, first, "i-1", t0 + minutes(10));
    // The second instance goes idle while the first is kept stopped: terminated.
    (void)pool.tick(connected(second, 0), t0 + minutes(11));
    const auto actions = pool.tick(connected(second, 0), t0 + minutes(12));
    CHECK(of<StopAction>(actions).empty());
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-2"});
    CHECK(instance_of(pool, first).state == InstanceState::Stopped);
    // A stopped instance costs no compute: the seconds stop counting.
    const auto counted = pool.instance_seconds().at({"aws", Market::OnDemand});
    (void)pool.reconcile({{"i-1", "stopped", "aws", first, false}}, t0 + minutes(13));
    (void)pool.tick(PoolView{}, t0 + minutes(30));
    CHECK(pool.instance_seconds().at({"aws", Market::OnDemand}) == doctest::Approx(counted));
}

TEST_CASE("latent pool: the most recently stopped instance is started, before any launch") {
    auto f = stopping_fixture(3);
    auto pool = f.make();
    const auto workers = launch_n(pool, 2, t0);
    const auto& older = workers[0];
    const auto& newer = workers[1];
    stop_idle(pool, older, "i-1", t0 + minutes(10));
    stop_idle(pool, newer, "i-2", t0 + minutes(20));
    auto actions = pool.tick(waiting(1), t0 + minutes(30));
    REQUIRE(of<StartAction>(actions).size() == 1);
    CHECK(of<StartAction>(actions)[0].instance_id == "i-2");
    CHECK(of<StartAction>(actions)[0].worker == newer);
    CHECK(of<LaunchAction>(actions).empty());
    const auto& started = instance_of(pool, newer);
    CHECK(started.state == InstanceState::Pending);
    CHECK(started.started_at == t0 + minutes(30));
    CHECK(started.launched == t0); // max_lifetime counts from the launch
    // While it boots, the same request does not start or launch another.
    actions = pool.tick(waiting(1), t0 + minutes(30) + seconds(5));
    CHECK(of<StartAction>(actions).empty());
    CHECK(of<LaunchAction>(actions).empty());
    // Two more requests: the other stopped one, then a launch.
    actions = pool.tick(waiting(3), t0 + minutes(31));
    REQUIRE(of<StartAction>(actions).size() == 1);
    CHECK(of<StartAction>(actions)[0].instance_id == "i-1");
    CHECK(of<StartAction>(actions)[0].worker == older);
    CHECK(of<LaunchAction>(actions).size() == 1);
    // The started worker logs in again: it is an instance like the others.
    actions = pool.tick(connected(newer, 1), t0 + minutes(32));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(instance_of(pool, newer).connected_once);
}

TEST_CASE("latent pool: a started instance whose worker does not come back is terminated") {
    auto f = stopping_fixture(1);
    f.settings.missing_timeout = minutes(5);
    auto pool = f.make();
    const auto worker = stopped_one(pool, t0 + minutes(2));
    // Stopped for a day: missing_timeout counts from the start, not from the launch.
    const auto start = t0 + std::chrono::hours(24);
    REQUIRE(of<StartAction>(pool.tick(waiting(1), start)).size() == 1);
    CHECK(of<TerminateAction>(pool.tick(waiting(1), start + minutes(4))).empty());
    const auto actions = pool.tick(waiting(1), start + minutes(5));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-1"});
    REQUIRE(of<AlertAction>(actions).size() == 1);
    CHECK(of<AlertAction>(actions)[0].message.find("of its start (it had been stopped)") !=
          std::string::npos);
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
}

TEST_CASE("latent pool: stops are verified; one not seen, or refused, becomes a termination") {
    auto f = stopping_fixture(2);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    (void)pool.tick(connected(worker, 0), t0 + seconds(1));
    REQUIRE(of<StopAction>(pool.tick(connected(worker, 0), t0 + seconds(61))).size() == 1);
    // EC2 still says running, then stopping: not verified yet.
    CHECK(pool.reconcile({{"i-1", "running", "aws", worker, false}}, t0 + minutes(2)).empty());
    CHECK(pool.reconcile({{"i-1", "stopping", "aws", worker, false}}, t0 + minutes(3)).empty());
    CHECK(instance_of(pool, worker).state == InstanceState::Stopping);
    CHECK(pool.tick(PoolView{}, t0 + seconds(60) + LatentPool::resend_after).empty());
    const auto late = pool.tick(PoolView{}, t0 + seconds(61) + LatentPool::resend_after);
    REQUIRE(of<TerminateAction>(late).size() == 1);
    REQUIRE(of<AlertAction>(late).size() == 1);
    CHECK(of<AlertAction>(late)[0].message.find("asked to stop") != std::string::npos);
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
    // A StopInstances that failed: terminated at once.
    auto other = f.make();
    const auto w2 = launch_one(other, "i-2", t0);
    (void)other.tick(connected(w2, 0), t0 + seconds(1));
    REQUIRE(of<StopAction>(other.tick(connected(w2, 0), t0 + seconds(61))).size() == 1);
    const auto failed = other.end_failed({"i-2"}, t0 + seconds(62));
    REQUIRE(of<TerminateAction>(failed).size() == 1);
    CHECK(of<TerminateAction>(failed)[0].instance_ids == std::vector<std::string>{"i-2"});
    CHECK(instance_of(other, w2).state == InstanceState::Terminating);
}

TEST_CASE("latent pool: a start refused is terminated and replaced; one unanswered waits") {
    auto f = stopping_fixture(2);
    auto pool = f.make();
    const auto workers = launch_n(pool, 2, t0);
    const auto& first = workers[0];
    const auto& second = workers[1];
    stop_idle(pool, first, "i-1", t0 + minutes(10));
    stop_idle(pool, second, "i-2", t0 + minutes(20));
    REQUIRE(of<StartAction>(pool.tick(waiting(1), t0 + minutes(30))).size() == 1);
    auto actions = pool.start_failed(
        "i-2", LaunchFailure::Capacity, "InsufficientInstanceCapacity", t0 + minutes(30));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-2"});
    CHECK(of<AlertAction>(actions).size() == 1);
    CHECK(instance_of(pool, second).state == InstanceState::Terminating);
    // The request still waits: the other stopped one is started next.
    actions = pool.tick(waiting(1), t0 + minutes(30) + seconds(1));
    REQUIRE(of<StartAction>(actions).size() == 1);
    CHECK(of<StartAction>(actions)[0].instance_id == "i-1");
    // No answer: it may have started; it stays under missing_timeout.
    actions = pool.start_failed(
        "i-1", LaunchFailure::Unknown, "timed out", t0 + minutes(30) + seconds(1));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(of<AlertAction>(actions).size() == 1);
    CHECK(instance_of(pool, first).state == InstanceState::Pending);
    // And EC2 listing it stopped past launch_grace: the start did not happen; terminated.
    CHECK(pool.reconcile({{"i-1", "stopped", "aws", first, false}}, t0 + minutes(31)).empty());
    actions = pool.reconcile({{"i-1", "stopped", "aws", first, false}},
                             t0 + minutes(30) + seconds(1) + LatentPool::launch_grace);
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-1"});
    CHECK(of<LostAction>(actions).empty());
}

TEST_CASE("latent pool: reconcile keeps the stopped instances it knows, ends the others") {
    auto f = stopping_fixture(1);
    auto pool = f.make();
    const auto known = stopped_one(pool, t0 + minutes(10));
    // Known and stopped: kept. Stopped and unknown (tagged for this master): terminated.
    auto actions = pool.reconcile(
        {{"i-1", "stopped", "aws", known, false}, {"i-x", "stopped", "aws", "aws/stranger", false}},
        t0 + minutes(20));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-x"});
    CHECK(instance_of(pool, known).state == InstanceState::Stopped);
    CHECK(of<TerminateAction>(pool.tick(PoolView{}, t0 + minutes(21))).empty());
    // Started by someone else: its worker may boot and log in, as after a start of ours.
    actions = pool.reconcile({{"i-1", "running", "aws", known, false}}, t0 + minutes(22));
    CHECK(actions.empty());
    CHECK(instance_of(pool, known).state == InstanceState::Pending);
    CHECK(instance_of(pool, known).started_at == t0 + minutes(22));
}

TEST_CASE("latent pool: a restarted master keeps stopped_max of its stopped instances") {
    // Stored by the previous run: three stopped (stopped_max was higher then), one orphaned.
    auto f = stopping_fixture(2);
    auto pool = f.make();
    std::vector<PoolInstance> stored;
    for (int i = 1; i <= 4; ++i) {
        PoolInstance instance;
        instance.worker = "aws/s" + std::to_string(i);
        instance.worker_class = "aws";
        instance.client_token = "tok-" + std::to_string(i);
        instance.instance_id = "i-" + std::to_string(i);
        instance.state = InstanceState::Stopped;
        instance.launched = t0;
        instance.ended_at = t0 + minutes(i); // i-1 stopped first
        instance.connected_once = true;
        instance.orphaned = i == 4; // its key is gone
        stored.push_back(instance);
    }
    pool.restore(stored, t0 + minutes(30));
    auto actions = pool.tick(PoolView{}, t0 + minutes(31));
    std::vector<std::string> ended;
    for (const auto& end : of<TerminateAction>(actions)) {
        ended.insert(ended.end(), end.instance_ids.begin(), end.instance_ids.end());
    }
    std::ranges::sort(ended);
    // The orphan, and the least recently stopped of the three adopted ones.
    CHECK(ended == std::vector<std::string>{"i-1", "i-4"});
    CHECK(instance_of(pool, "aws/s2").state == InstanceState::Stopped);
    CHECK(instance_of(pool, "aws/s3").state == InstanceState::Stopped);
    // The adopted ones are used: the most recently stopped first.
    actions = pool.tick(waiting(1), t0 + minutes(32));
    REQUIRE(of<StartAction>(actions).size() == 1);
    CHECK(of<StartAction>(actions)[0].instance_id == "i-3");
    // A class that no longer stops idle instances keeps none.
    Fixture plain;
    auto no_stop = plain.make();
    stored.pop_back();
    no_stop.restore(stored, t0 + minutes(30));
    CHECK(of<TerminateAction>(no_stop.tick(PoolView{}, t0 + minutes(31))).size() == 3);
}

TEST_CASE("latent pool: a stopped instance past max_lifetime is terminated, not started") {
    auto f = stopping_fixture(2);
    f.settings.max_lifetime = std::chrono::hours(6);
    auto pool = f.make();
    const auto worker = stopped_one(pool, t0 + minutes(10));
    CHECK(of<TerminateAction>(pool.tick(PoolView{}, t0 + std::chrono::hours(5))).empty());
    // Launched 100 s before its stop at 10 minutes.
    CHECK(of<TerminateAction>(pool.tick(PoolView{}, t0 + std::chrono::hours(6))).empty());
    const auto actions = pool.tick(waiting(1), t0 + std::chrono::hours(6) + minutes(10));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].reason.find("max_lifetime while stopped") !=
          std::string::npos);
    CHECK(of<StartAction>(actions).empty());
    CHECK(of<LaunchAction>(actions).size() == 1);
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
}

TEST_CASE("latent pool: a spot instance is never stopped") {
    Fixture f;
    f.settings.spot = true;
    f.settings.stop_when_idle = true;
    f.settings.stopped_max = 5;
    f.settings.idle_timeout = seconds(60);
    auto pool = f.make();
    auto launch = of<LaunchAction>(pool.tick(waiting(1), t0));
    pool.launched(launch[0].worker, "i-s", true, t0);
    (void)pool.tick(connected(launch[0].worker, 0), t0 + seconds(1));
    const auto actions = pool.tick(connected(launch[0].worker, 0), t0 + seconds(61));
    CHECK(of<StopAction>(actions).empty());
    CHECK(of<TerminateAction>(actions).size() == 1);
}

TEST_CASE("latent pool: terminations are verified, and sent again when not seen") {
    Fixture f;
    f.settings.missing_timeout = minutes(1);
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    REQUIRE(of<TerminateAction>(pool.tick(PoolView{}, t0 + minutes(1))).size() == 1);
    // EC2 still says running: no verification yet.
    CHECK(pool.reconcile({{"i-1", "running", "aws", worker, false}}, t0 + minutes(2)).empty());
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
    const auto again = pool.tick(PoolView{}, t0 + minutes(1) + LatentPool::resend_after);
    REQUIRE(of<TerminateAction>(again).size() == 1);
    REQUIRE(of<AlertAction>(again).size() == 1);
    CHECK(of<AlertAction>(again)[0].message.find("still lists it") != std::string::npos);
    (void)pool.reconcile({{"i-1", "shutting-down", "aws", worker, false}}, t0 + minutes(7));
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
    const auto done =
        pool.reconcile({{"i-1", "terminated", "aws", worker, false}}, t0 + minutes(8));
    CHECK(done.empty()); // asked for: not a loss
    CHECK(instance_of(pool, worker).state == InstanceState::Terminated);
    // A failed TerminateInstances is tried again at the next tick.
    auto other = f.make();
    const auto w2 = launch_one(other, "i-2", t0);
    REQUIRE(of<TerminateAction>(other.tick(PoolView{}, t0 + minutes(1))).size() == 1);
    CHECK(other.end_failed({"i-2"}, t0 + minutes(1)).empty());
    CHECK(of<TerminateAction>(other.tick(PoolView{}, t0 + minutes(1) + seconds(1))).size() == 1);
    CHECK(instance_of(other, w2).state == InstanceState::Terminating);
}

TEST_CASE("latent pool: reconcile terminates unknown tagged instances and keeps verifying") {
    Fixture f;
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    const auto actions = pool.reconcile({{"i-1", "running", "aws", worker, false},
                                         {"i-x", "running", "aws", "aws/old", false},
                                         {"i-y", "pending", "gone", "gone/1", true},
                                         {"i-z", "terminated", "aws", "aws/dead", false},
                                         {"i-q", "shutting-down", "aws", "aws/q", false}},
                                        t0 + seconds(5));
    const auto ends = of<TerminateAction>(actions);
    REQUIRE(ends.size() == 1);
    CHECK(ends[0].instance_ids == std::vector<std::string>{"i-x", "i-y"});
    REQUIRE(of<AlertAction>(actions).size() == 1);
    CHECK(of<AlertAction>(actions)[0].message.find("i-x, i-y") != std::string::npos);
    CHECK(of<LostAction>(actions).empty());
    // They are tracked until EC2 shows them terminated, then forgotten.
    CHECK(pool.instances().size() == 3);
    (void)pool.reconcile(
        {{"i-1", "running", "aws", worker, false}, {"i-x", "terminated", "aws", "aws/old", false}},
        t0 + minutes(1));
    pool.forget_terminated();
    CHECK(pool.instances().size() == 1); // i-y no longer listed: gone
    CHECK(pool.instances()[0].instance_id == "i-1");
    CHECK(instance_of(pool, worker).state == InstanceState::Running);
}

TEST_CASE("latent pool: a lost RunInstances answer is found by the worker tag, or forgotten") {
    Fixture f;
    f.settings.max_instances = 2;
    auto pool = f.make();
    const auto launches = of<LaunchAction>(pool.tick(waiting(2), t0));
    REQUIRE(launches.size() == 2);
    CHECK(of<AlertAction>(
              pool.launch_failed(launches[0].worker, LaunchFailure::Unknown, "timeout", t0))
              .size() == 1);
    CHECK(of<AlertAction>(
              pool.launch_failed(launches[1].worker, LaunchFailure::Unknown, "timeout", t0))
              .size() == 1);
    // Both intents stay (and count: no launch for the same requests).
    CHECK(instance_of(pool, launches[0].worker).state == InstanceState::Launching);
    CHECK(of<LaunchAction>(pool.tick(waiting(2), t0 + seconds(60))).empty());
    // EC2 lists the first (tag ci:worker): adopted, not terminated.
    const auto actions =
        pool.reconcile({{"i-7", "pending", "aws", launches[0].worker, true}}, t0 + seconds(30));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(instance_of(pool, launches[0].worker).instance_id == "i-7");
    CHECK(instance_of(pool, launches[0].worker).state == InstanceState::Pending);
    CHECK(instance_of(pool, launches[0].worker).market == Market::Spot);
    // The second made no instance: forgotten after the grace, not before.
    CHECK(instance_of(pool, launches[1].worker).state == InstanceState::Launching);
    (void)pool.reconcile({{"i-7", "running", "aws", launches[0].worker, true}},
                         t0 + LatentPool::launch_grace);
    CHECK(instance_of(pool, launches[1].worker).state == InstanceState::Terminated);
}

TEST_CASE("latent pool: an instance ended by EC2 is lost: its builds are retried") {
    Fixture f;
    auto pool = f.make();
    const auto worker = launch_one(pool, "i-1", t0);
    (void)pool.tick(connected(worker, 1), t0 + seconds(10));
    auto actions =
        pool.reconcile({{"i-1", "shutting-down", "aws", worker, true}}, t0 + seconds(20));
    REQUIRE(of<LostAction>(actions).size() == 1);
    CHECK(of<LostAction>(actions)[0].worker == worker);
    CHECK(instance_of(pool, worker).state == InstanceState::Terminating);
    actions = pool.reconcile({{"i-1", "terminated", "aws", worker, true}}, t0 + seconds(40));
    CHECK(of<LostAction>(actions).empty()); // told once
    // An instance EC2 no longer lists at all is lost too.
    const auto w2 = launch_one(pool, "i-2", t0 + minutes(1));
    actions = pool.reconcile({}, t0 + minutes(1) + LatentPool::launch_grace);
    REQUIRE(of<LostAction>(actions).size() == 1);
    CHECK(of<LostAction>(actions)[0].worker == w2);
    // An operational error, as when EC2 lists it terminated (the master lists only the
    // instances that are not: Ec2Pool's reconcile filter).
    REQUIRE(of<AlertAction>(actions).size() == 1);
    CHECK(of<AlertAction>(actions)[0].message.find("i-2") != std::string::npos);
}

TEST_CASE("latent pool: stored instances whose workers cannot log in are terminated") {
    Fixture f;
    auto pool = f.make();
    PoolInstance running;
    running.worker = "aws/old1";
    running.worker_class = "aws";
    running.instance_id = "i-old";
    running.state = InstanceState::Running;
    running.launched = t0;
    running.orphaned = true; // no credentials stored
    PoolInstance intent;
    intent.worker = "aws/old2";
    intent.worker_class = "aws";
    intent.client_token = "tok";
    intent.state = InstanceState::Launching;
    intent.launched = t0;
    intent.orphaned = true;
    pool.restore({running, intent}, t0);
    auto actions = pool.tick(PoolView{}, t0 + seconds(1));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-old"});
    CHECK(of<DrainAction>(actions).empty());
    // The intent's instance (the master died right after RunInstances) is found by its tag,
    // and terminated as well: its worker cannot log in to this run.
    (void)pool.reconcile({{"i-old", "shutting-down", "aws", "aws/old1", false},
                          {"i-new", "running", "aws", "aws/old2", false}},
                         t0 + seconds(2));
    CHECK(instance_of(pool, "aws/old2").instance_id == "i-new");
    actions = pool.tick(PoolView{}, t0 + seconds(3));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-new"});
    // Orphans do not count against the class: a waiting request launches a new instance.
    CHECK(of<LaunchAction>(pool.tick(waiting(1), t0 + seconds(4))).size() == 1);
}

TEST_CASE("latent pool: a restarted master adopts the instances whose workers can log in") {
    Fixture f; // missing_timeout 1200 s, build_wait_timeout 3000 s
    auto pool = f.make();
    const auto restart = t0 + minutes(60);
    PoolInstance was_connected; // its worker had logged in before the crash
    was_connected.worker = "aws/a";
    was_connected.worker_class = "aws";
    was_connected.client_token = "tok-a";
    was_connected.instance_id = "i-a";
    was_connected.state = InstanceState::Running;
    was_connected.launched = t0;
    was_connected.connected_once = true;
    PoolInstance never; // launched, its token unused
    never.worker = "aws/b";
    never.worker_class = "aws";
    never.client_token = "tok-b";
    never.instance_id = "i-b";
    never.state = InstanceState::Pending;
    never.launched = restart - minutes(5);
    PoolInstance intent; // the master died right after RunInstances
    intent.worker = "aws/c";
    intent.worker_class = "aws";
    intent.client_token = "tok-c";
    intent.state = InstanceState::Launching;
    intent.launched = restart - seconds(1);
    pool.restore({was_connected, never, intent}, restart);
    // Launched an hour ago, but its worker gets missing_timeout from the restart to come back:
    // nothing is ended, and the adopted instances count against the class (no launch).
    PoolView view = waiting(1);
    auto actions = pool.tick(view, restart + seconds(1));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(of<LaunchAction>(actions).empty());
    CHECK(of<DrainAction>(actions).empty());
    // The intent's instance is found by its tag and adopted, not terminated.
    actions = pool.reconcile({{"i-a", "running", "aws", "aws/a", false},
                              {"i-b", "running", "aws", "aws/b", false},
                              {"i-c", "pending", "aws", "aws/c", false}},
                             restart + seconds(2));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK(instance_of(pool, "aws/c").instance_id == "i-c");
    CHECK(instance_of(pool, "aws/c").state == InstanceState::Pending);
    // aws/a's worker comes back and takes the waiting build.
    view.connected["aws/a"] = 1;
    actions = pool.tick(view, restart + minutes(10));
    CHECK(of<TerminateAction>(actions).empty());
    CHECK_FALSE(instance_of(pool, "aws/a").disconnected_at.has_value());
    // aws/b never connects: ended missing_timeout after its launch (15 min after the restart);
    // aws/c's worker has until 20 minutes after its launch.
    actions = pool.tick(view, restart + minutes(15));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-b"});
    CHECK(of<AlertAction>(actions).size() == 1);
    actions = pool.tick(view, restart + minutes(19) + seconds(59));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-c"});
    // EC2 no longer lists the two: their terminations are verified.
    (void)pool.reconcile({{"i-a", "running", "aws", "aws/a", false}}, restart + minutes(21));
    CHECK(instance_of(pool, "aws/b").state == InstanceState::Terminated);
    CHECK(instance_of(pool, "aws/c").state == InstanceState::Terminated);
    // aws/a lives on under the usual rules: idle for build_wait_timeout, it is terminated.
    view.connected["aws/a"] = 0;
    (void)pool.tick(view, restart + minutes(21));
    actions = pool.tick(view, restart + minutes(21) + seconds(3000));
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-a"});
}

TEST_CASE("latent pool: an adopted instance whose worker does not come back is lost") {
    Fixture f;
    auto pool = f.make();
    PoolInstance was_connected;
    was_connected.worker = "aws/a";
    was_connected.worker_class = "aws";
    was_connected.client_token = "tok-a";
    was_connected.instance_id = "i-a";
    was_connected.state = InstanceState::Running;
    was_connected.launched = t0;
    was_connected.connected_once = true;
    pool.restore({was_connected}, t0 + minutes(60));
    CHECK(of<TerminateAction>(pool.tick(PoolView{}, t0 + minutes(79))).empty());
    const auto actions = pool.tick(PoolView{}, t0 + minutes(80));
    REQUIRE(of<LostAction>(actions).size() == 1);
    REQUIRE(of<TerminateAction>(actions).size() == 1);
    CHECK(of<TerminateAction>(actions)[0].instance_ids == std::vector<std::string>{"i-a"});
}

TEST_CASE("latent pool: instance seconds per class and market") {
    Fixture f;
    f.settings.max_instances = 2;
    auto pool = f.make();
    (void)pool.tick(PoolView{}, t0);
    const auto worker = launch_one(pool, "i-1", t0);
    (void)pool.tick(connected(worker, 1), t0 + seconds(100));
    (void)pool.tick(connected(worker, 1), t0 + seconds(250));
    const auto& seconds_total = pool.instance_seconds();
    REQUIRE(seconds_total.contains({"aws", Market::OnDemand}));
    CHECK(seconds_total.at({"aws", Market::OnDemand}) == doctest::Approx(250));
    // A clock that goes back adds nothing.
    (void)pool.tick(connected(worker, 1), t0 + seconds(200));
    CHECK(pool.instance_seconds().at({"aws", Market::OnDemand}) == doctest::Approx(250));
}

TEST_CASE("latent pool: state names round-trip") {
    for (const auto state : {InstanceState::Launching,
                             InstanceState::Pending,
                             InstanceState::Running,
                             InstanceState::Stopping,
                             InstanceState::Stopped,
                             InstanceState::Terminating,
                             InstanceState::Terminated}) {
        CHECK(ci::master::instance_state_from(ci::master::to_string(state)) == state);
    }
    CHECK_FALSE(ci::master::instance_state_from("exploded").has_value());
    CHECK(std::string(ci::master::to_string(Market::Spot)) == "spot");
}
