// The EC2 pool's shell (Ec2Pool) with a fake EC2 that checks, when RunInstances is called,
// that the launch's intent is already in the store (read through a connection of its own).

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/ec2_pool.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;

namespace {

const char* pool_config = R"(
slaves:
  aws: {ami: ci-image, slaves: 2, max_spot_price: 0.5, missing_timeout: 60, tags: {team: ci}}
builders:
  on-ec2: {workers: [aws], steps: [{name: t, run: "true"}]}
schedulers: {force: {type: force, builders: [on-ec2]}}
)";

ci::config::Config parse(const char* text) {
    auto checked = ci::config::parse_config(text, "pool.yml");
    REQUIRE(checked.ok());
    return *checked.config;
}

struct FakeEc2 final : ci::master::Ec2Api {
    std::filesystem::path store_path;
    std::vector<ci::aws::RunInstancesInput> runs;
    std::vector<bool> intent_stored_first;
    std::vector<std::string> terminated;
    std::map<std::string, ci::aws::Instance> instances; // what DescribeInstances lists
    std::optional<ci::Error> run_error;
    int next_id = 1;

    ci::Result<std::vector<ci::aws::Instance>>
    run_instances(const ci::aws::RunInstancesInput& input) override {
        runs.push_back(input);
        auto store = ci::store::open_sqlite(store_path);
        REQUIRE_OK(store);
        auto live = (*store)->live_instances();
        REQUIRE_OK(live);
        intent_stored_first.push_back(std::ranges::any_of(*live, [&](const auto& record) {
            return record.client_token == input.client_token && record.state == "launching" &&
                   record.instance_id.empty();
        }));
        if (run_error) {
            return ci::fail(*run_error);
        }
        ci::aws::Instance instance;
        instance.instance_id = "i-" + std::to_string(next_id++);
        instance.state = "pending";
        instance.lifecycle = input.spot_max_price ? "spot" : "";
        instance.tags = input.tags;
        instances[instance.instance_id] = instance;
        return std::vector<ci::aws::Instance>{instance};
    }
    ci::Result<std::vector<ci::aws::Instance>>
    describe_instances(const std::vector<ci::aws::Filter>& filters) override {
        REQUIRE(filters.size() == 1);
        CHECK(filters[0].name == "tag:ci:master");
        std::vector<ci::aws::Instance> out;
        out.reserve(instances.size());
        for (const auto& [id, instance] : instances) {
            out.push_back(instance);
        }
        return out;
    }
    ci::Status terminate_instances(const std::vector<std::string>& ids) override {
        for (const auto& id : ids) {
            terminated.push_back(id);
            instances[id].state = "shutting-down";
        }
        return {};
    }
    ci::Status stop_instances(const std::vector<std::string>&) override { return {}; }
    ci::Status start_instances(const std::vector<std::string>&) override { return {}; }
    ci::Result<std::vector<ci::aws::Image>>
    describe_images(const std::vector<ci::aws::Filter>& filters) override {
        CHECK(std::ranges::any_of(filters, [](const auto& f) {
            return f.name == "tag:base_name" && f.values == std::vector<std::string>{"ci-image"};
        }));
        CHECK(std::ranges::any_of(filters, [](const auto& f) {
            return f.name == "tag:production" && f.values == std::vector<std::string>{"true"};
        }));
        return std::vector<ci::aws::Image>{
            {"ami-old", "a", "available", "2026-01-01", {{"timestamp", "20260101"}}},
            {"ami-new", "b", "available", "2025-01-01", {{"timestamp", "20261101"}}}};
    }
};

struct Fixture {
    ci::test::TempDir dir;
    ci::config::Config config = parse(pool_config);
    ci::ManualClock clock{std::chrono::system_clock::now()};
    ci::master::Credentials credentials{config, clock};
    ci::master::WorkerRegistry workers;
    ci::master::Reports reports{config, clock, {}, "http://ci"};
    std::shared_ptr<FakeEc2> ec2 = std::make_shared<FakeEc2>();
    std::vector<std::string> rendered;

    Fixture() {
        config.buildmaster.state = (dir / "state.sqlite").string();
        ec2->store_path = config.buildmaster.state;
        auto store = ci::store::open_sqlite(config.buildmaster.state);
        REQUIRE_OK(store);
        ci::sched::RequestBuild request;
        request.scheduler = "force";
        request.builder = "on-ec2";
        request.reason = "forced";
        REQUIRE_OK((*store)->write({ci::store::Batch{{}, {request}, {}}}, clock.now()));
    }

    std::unique_ptr<ci::master::Ec2Pool> pool() {
        auto made = ci::master::Ec2Pool::create(ci::master::Ec2Pool::Parts{
            config,
            clock,
            credentials,
            workers,
            reports,
            config.buildmaster.state,
            [this](const std::string& worker_class,
                   const std::string& worker,
                   const std::string& token) -> ci::Result<std::string> {
                rendered.push_back(worker_class + " " + worker + " " + token);
                return "#cloud-config\n";
            },
            {},
            180s,
            [this](const std::string&) { return ec2; }});
        REQUIRE_OK(made);
        return std::move(*made);
    }

    std::vector<ci::store::LatentInstance> stored() const {
        auto store = ci::store::open_sqlite(config.buildmaster.state);
        REQUIRE_OK(store);
        auto live = (*store)->live_instances();
        REQUIRE_OK(live);
        return *live;
    }
};

} // namespace

TEST_CASE("ec2 pool: the intent is stored before RunInstances, the id after") {
    Fixture f;
    auto pool = f.pool();
    pool->step(true);
    REQUIRE(f.ec2->runs.size() == 1);
    CHECK(f.ec2->intent_stored_first == std::vector<bool>{true});
    const auto& input = f.ec2->runs[0];
    CHECK(input.image_id == "ami-new"); // the newest by its timestamp tag
    CHECK(input.spot_max_price == "0.5");
    CHECK(input.shutdown_behavior == "terminate");
    CHECK_FALSE(input.client_token.empty());
    CHECK(input.user_data == "#cloud-config\n");
    CHECK(input.tags.at("ci:class") == "aws");
    CHECK(input.tags.at("ci:master") == f.config.buildmaster.host);
    CHECK(input.tags.at("team") == "ci");
    const auto worker = input.tags.at("ci:worker");
    CHECK(worker.starts_with("aws/"));
    // The renderer got the worker's name and a one-time token from the CSPRNG.
    REQUIRE(f.rendered.size() == 1);
    CHECK(f.rendered[0].starts_with("aws " + worker + " "));
    CHECK(f.rendered[0].size() == std::string("aws  ").size() + worker.size() + 64);
    auto stored = f.stored();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].instance_id == "i-1");
    CHECK(stored[0].state == "pending");
    CHECK(stored[0].market == "spot");
    CHECK(stored[0].worker == worker);
    CHECK(stored[0].client_token == input.client_token);
    const auto shown = pool->instance_of(worker);
    REQUIRE(shown.has_value());
    CHECK(shown->instance_id == "i-1");
    CHECK(shown->market == "spot");
    // The same waiting request does not launch again.
    pool->step(false);
    CHECK(f.ec2->runs.size() == 1);

    // Never connected within missing_timeout: terminated, stored as terminating first.
    f.clock.advance(61s);
    pool->step(false);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-1"});
    stored = f.stored();
    REQUIRE_FALSE(stored.empty());
    CHECK(stored[0].state == "terminating");
    CHECK(stored[0].terminated.has_value());
    // EC2 shows it terminated: verified, no longer live.
    f.ec2->instances["i-1"].state = "terminated";
    pool->step(true);
    CHECK(std::ranges::none_of(f.stored(), [](const auto& r) { return r.instance_id == "i-1"; }));
    CHECK(pool->instances().size() == 1); // the request still waits: a new launch
    CHECK(f.ec2->runs.size() == 2);
}

TEST_CASE("ec2 pool: a restarted master terminates what the previous run left") {
    Fixture f;
    {
        auto pool = f.pool();
        pool->step(true);
        REQUIRE(f.ec2->runs.size() == 1);
        // The master dies here: a pool whose thread never ran terminates nothing when it
        // goes, as a kill -9 would not.
        pool.reset();
        CHECK(f.ec2->terminated.empty());
    }
    auto pool = f.pool();
    pool->step(true);
    CHECK(std::ranges::find(f.ec2->terminated, "i-1") != f.ec2->terminated.end());
    // And an unknown tagged instance is terminated by the reconcile.
    ci::aws::Instance stranger;
    stranger.instance_id = "i-stranger";
    stranger.state = "running";
    stranger.tags = {{"ci:master", f.config.buildmaster.host}};
    f.ec2->instances["i-stranger"] = stranger;
    pool->step(true);
    CHECK(std::ranges::find(f.ec2->terminated, "i-stranger") != f.ec2->terminated.end());
    CHECK(std::ranges::any_of(f.stored(), [](const auto& r) {
        return r.instance_id == "i-stranger" && r.state == "terminating";
    }));
}

TEST_CASE("ec2 pool: RequestLimitExceeded backs the class off; nothing is left behind") {
    Fixture f;
    f.ec2->run_error = ci::Error{ci::ErrorCode::AwsService,
                                 "RunInstances: 400 RequestLimitExceeded: Request limit exceeded.",
                                 400};
    auto pool = f.pool();
    pool->step(true);
    CHECK(f.ec2->runs.size() == 1);
    CHECK(f.stored().empty()); // the intent ended: no instance was made
    pool->step(false);
    f.clock.advance(4s);
    pool->step(false);
    CHECK(f.ec2->runs.size() == 1); // held back at least 5 s
    f.clock.advance(7s);
    pool->step(false);
    CHECK(f.ec2->runs.size() == 2);
    // A 500 after the retries: the instance may exist, the intent stays for reconcile.
    f.ec2->run_error = ci::Error{ci::ErrorCode::AwsService, "RunInstances: 500 InternalError", 500};
    f.clock.advance(300s);
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 3);
    const auto stored = f.stored();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].state == "launching");
    CHECK(stored[0].client_token == f.ec2->runs[2].client_token);
}
