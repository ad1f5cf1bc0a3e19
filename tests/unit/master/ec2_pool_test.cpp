// The EC2 pool's shell (Ec2Pool) with a fake EC2 that checks, when RunInstances is called,
// that the launch's intent is already in the store (read through a connection of its own).

#include <algorithm>
#include <atomic>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/master/master.h>
#include <ci/store/store.h>

#include "master/ec2_pool.h"
#include "master/protocol.h"
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
    /// The instance is made, then the answer is lost (no response: a transport error).
    bool lose_answer = false;
    std::atomic<int> run_calls{0}; // read by a test while the pool's thread runs
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
        ++run_calls;
        if (lose_answer) {
            return ci::fail(ci::ErrorCode::Transport, "RunInstances: the connection was reset");
        }
        return std::vector<ci::aws::Instance>{instance};
    }
    ci::Result<std::vector<ci::aws::Instance>>
    describe_instances(const std::vector<ci::aws::Filter>& filters) override {
        REQUIRE(filters.size() == 2);
        CHECK(filters[0].name == "tag:ci:master");
        CHECK(filters[1].name == "instance-state-name");
        CHECK(std::ranges::find(filters[1].values, "terminated") == filters[1].values.end());
        std::vector<ci::aws::Instance> out;
        for (const auto& [id, instance] : instances) {
            if (std::ranges::find(filters[1].values, instance.state) != filters[1].values.end()) {
                out.push_back(instance);
            }
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
    std::vector<std::string> stopped;
    std::vector<std::string> started;
    std::optional<ci::Error> start_error;
    ci::Status stop_instances(const std::vector<std::string>& ids) override {
        for (const auto& id : ids) {
            stopped.push_back(id);
            instances[id].state = "stopped";
        }
        return {};
    }
    ci::Status start_instances(const std::vector<std::string>& ids) override {
        for (const auto& id : ids) {
            started.push_back(id);
            if (start_error) {
                return ci::fail(*start_error);
            }
            instances[id].state = "pending";
        }
        return {};
    }
    int image_calls = 0;
    ci::Result<std::vector<ci::aws::Image>>
    describe_images(const std::vector<ci::aws::Filter>& filters) override {
        ++image_calls;
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
        request();
    }

    // `restarted`: the credentials of a new master process (default: the fixture's).
    std::unique_ptr<ci::master::Ec2Pool> pool(ci::master::Credentials* restarted = nullptr) {
        auto made = ci::master::Ec2Pool::create(ci::master::Ec2Pool::Parts{
            config,
            clock,
            restarted != nullptr ? *restarted : credentials,
            workers,
            reports,
            config.buildmaster.state,
            [this](const std::string& worker_class,
                   const std::string& worker,
                   const std::string& token) -> ci::Result<std::string> {
                rendered.push_back(worker_class + " " + worker + " " + token);
                return "#cloud-config\n";
            },
            180s,
            [this](const std::string&) { return ec2; }});
        REQUIRE_OK(made);
        return std::move(*made);
    }

    // One more build request for the EC2 builder.
    void request() const {
        auto store = ci::store::open_sqlite(config.buildmaster.state);
        REQUIRE_OK(store);
        ci::sched::RequestBuild request;
        request.scheduler = "force";
        request.builder = "on-ec2";
        request.reason = "forced";
        REQUIRE_OK((*store)->write({ci::store::Batch{{}, {request}, {}}}, clock.now()));
    }

    ci::config::Ec2Workers& ec2_class() {
        return std::get<ci::config::Ec2Workers>(config.slaves.at("aws"));
    }

    std::vector<ci::store::WorkerKey> keys() const {
        auto store = ci::store::open_sqlite(config.buildmaster.state);
        REQUIRE_OK(store);
        auto keys = (*store)->worker_keys();
        REQUIRE_OK(keys);
        return *keys;
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

TEST_CASE("ec2 pool: a restarted master adopts what the previous run launched") {
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
    REQUIRE(f.rendered.size() == 1);
    const auto worker = f.ec2->runs[0].tags.at("ci:worker");
    const auto token = f.rendered[0].substr(f.rendered[0].rfind(' ') + 1);
    ci::master::Credentials restarted(f.config, f.clock);
    auto pool = f.pool(&restarted);
    pool->step(true);
    CHECK(f.ec2->terminated.empty());
    CHECK(f.ec2->runs.size() == 1); // the waiting request is covered by the adopted instance
    const auto adopted = pool->instance_of(worker);
    REQUIRE(adopted.has_value());
    CHECK(adopted->instance_id == "i-1");
    // Its worker boots late and logs in to the new master with the token of its user data.
    CHECK(restarted.token_unused(worker) == std::optional<bool>(true));
    namespace protocol = ci::master::protocol;
    CHECK(restarted.login(worker, protocol::proof(token, "n1"), "n1"));
    // And an unknown tagged instance is terminated by the reconcile.
    ci::aws::Instance stranger;
    stranger.instance_id = "i-stranger";
    stranger.state = "running";
    stranger.tags = {{"ci:master", f.config.buildmaster.host}};
    f.ec2->instances["i-stranger"] = stranger;
    pool->step(true);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-stranger"});
    CHECK(std::ranges::any_of(f.stored(), [](const auto& r) {
        return r.instance_id == "i-stranger" && r.state == "terminating";
    }));
}

TEST_CASE("ec2 pool: a restarted master terminates what it cannot adopt, and what never "
          "connects") {
    Fixture f;
    {
        auto pool = f.pool();
        pool->step(true);
        REQUIRE(f.ec2->runs.size() == 1);
        pool.reset();
    }
    // Its worker's key is gone (a store from before schema 11 had none): it cannot log in.
    {
        auto store = ci::store::open_sqlite(f.config.buildmaster.state);
        REQUIRE_OK(store);
        auto keys = (*store)->worker_keys();
        REQUIRE_OK(keys);
        REQUIRE(keys->size() == 1);
        REQUIRE_OK((*store)->delete_worker_key((*keys)[0].worker));
    }
    ci::master::Credentials restarted(f.config, f.clock);
    auto pool = f.pool(&restarted);
    pool->step(true);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-1"});
    // The request still waits: a new instance is launched, and, adopted after another crash,
    // it is terminated once missing_timeout (60 s) has passed since its launch without its
    // worker connecting.
    f.ec2->instances["i-1"].state = "terminated";
    pool->step(true);
    REQUIRE(f.ec2->runs.size() == 2);
    pool.reset();
    ci::master::Credentials again(f.config, f.clock);
    pool = f.pool(&again);
    f.clock.advance(59s);
    pool->step(true);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-1"});
    f.clock.advance(2s);
    pool->step(false);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-1", "i-2"});
    CHECK_FALSE(again.token_unused(f.ec2->runs[1].tags.at("ci:worker")).has_value());
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

namespace {

// The one-time token the renderer was given for the n-th launch ("class worker token").
std::string rendered_token(const Fixture& f, std::size_t n) {
    REQUIRE(f.rendered.size() > n);
    return f.rendered[n].substr(f.rendered[n].rfind(' ') + 1);
}

} // namespace

TEST_CASE("ec2 pool: a launch whose answer was lost keeps its token; reconcile adopts the "
          "instance and its worker can log in") {
    Fixture f;
    f.ec2->lose_answer = true;
    auto pool = f.pool();
    pool->step(true);
    REQUIRE(f.ec2->runs.size() == 1);
    const auto worker = f.ec2->runs[0].tags.at("ci:worker");
    const auto token = rendered_token(f, 0);
    auto stored = f.stored();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].state == "launching");
    CHECK(stored[0].instance_id.empty());
    // The next reconcile finds the instance by its ci:worker tag.
    f.ec2->lose_answer = false;
    f.clock.advance(1s);
    pool->step(true);
    const auto shown = pool->instance_of(worker);
    REQUIRE(shown.has_value());
    CHECK(shown->instance_id == "i-1");
    CHECK(shown->state == "pending");
    CHECK(f.ec2->runs.size() == 1); // the waiting request is covered by the adopted instance
    // Its worker boots with the token of the lost launch (it is in its user data): it logs in.
    CHECK(f.credentials.login(worker, ci::master::protocol::proof(token, "n1"), "n1").has_value());
}

TEST_CASE("ec2 pool: a refused launch's token is revoked, and so is a lost launch's when the "
          "pool forgets it") {
    Fixture f;
    f.ec2->run_error =
        ci::Error{ci::ErrorCode::AwsService, "RunInstances: 400 InvalidParameterValue: no", 400};
    auto pool = f.pool();
    pool->step(true);
    REQUIRE(f.ec2->runs.size() == 1);
    const auto refused = f.ec2->runs[0].tags.at("ci:worker");
    CHECK_FALSE(
        f.credentials.login(refused, ci::master::protocol::proof(rendered_token(f, 0), "n1"), "n1")
            .has_value());

    // No answer and no instance made: reconcile forgets the intent after launch_grace.
    f.ec2->run_error =
        ci::Error{ci::ErrorCode::Transport, "RunInstances: the connection was reset", {}};
    f.clock.advance(300s);
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 2);
    f.ec2->instances.clear(); // the fake made one; EC2 made none
    const auto lost = f.ec2->runs[1].tags.at("ci:worker");
    f.clock.advance(ci::master::LatentPool::launch_grace + 1s);
    f.ec2->run_error =
        ci::Error{ci::ErrorCode::AwsService, "RunInstances: 400 InvalidParameterValue: no", 400};
    pool->step(true);
    CHECK_FALSE(pool->instance_of(lost).has_value());
    CHECK_FALSE(
        f.credentials.login(lost, ci::master::protocol::proof(rendered_token(f, 1), "n2"), "n2")
            .has_value());
}

TEST_CASE("ec2 pool: a graceful stop finds and terminates a launch whose answer was lost") {
    Fixture f;
    f.ec2->lose_answer = true;
    auto pool = f.pool();
    pool->start();
    // The thread reconciles, then launches; its answer is lost.
    for (int i = 0; i < 500 && f.ec2->run_calls.load() == 0; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(f.ec2->run_calls.load() == 1);
    pool->stop(); // joins the thread: its step (the failed launch) is over first
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-1"});
    // Its id is stored: the next start verifies the termination.
    const auto stored = f.stored();
    REQUIRE(stored.size() == 1);
    CHECK(stored[0].instance_id == "i-1");
}

TEST_CASE("ec2 user data: the class's template filled in for one launch") {
    auto config = parse(pool_config);
    config.buildmaster.host = "ci.example.org";
    auto renderer = ci::master::ec2_user_data_renderer(config);
    REQUIRE_OK(renderer);
    const std::string token(64, 'a');
    const std::string fingerprint = "sha256:" + std::string(64, 'b');
    auto text = (*renderer)(ci::master::Ec2Launch{"aws", "aws/x1", token, 9989, fingerprint});
    REQUIRE_OK(text);
    CHECK(text->starts_with("#cloud-config\n"));
    CHECK(text->find("CI_MASTER=ci.example.org:9989\n") != std::string::npos);
    CHECK(text->find("CI_WORKER_NAME=aws/x1\n") != std::string::npos);
    CHECK(text->find("CI_WORKER_SECRET=" + token + "\n") != std::string::npos);
    CHECK(text->find("CI_MASTER_FINGERPRINT=" + fingerprint + "\n") != std::string::npos);
    // No fingerprint (TLS off): a booted worker could not check the master.
    auto plain = (*renderer)(ci::master::Ec2Launch{"aws", "aws/x1", token, 9989, ""});
    REQUIRE_FALSE(plain);
    CHECK(plain.error().message.find("buildmaster.tls is false") != std::string::npos);
    // A class that is not an EC2 class of the config.
    auto other = (*renderer)(ci::master::Ec2Launch{"osx", "osx/0", token, 9989, fingerprint});
    REQUIRE_FALSE(other);
    CHECK(other.error().message.find("slaves.osx") != std::string::npos);
}

TEST_CASE("ec2 user data: a template that cannot be read stops the renderer, naming it") {
    ci::test::TempDir dir;
    auto config = parse(pool_config);
    auto& ec2 = std::get<ci::config::Ec2Workers>(config.slaves.at("aws"));
    ec2.user_data_template = (dir / "missing.yml").string();
    auto renderer = ci::master::ec2_user_data_renderer(config);
    REQUIRE_FALSE(renderer);
    CHECK(renderer.error().message.find("slaves.aws.user_data_template") != std::string::npos);
    CHECK(renderer.error().message.find("missing.yml") != std::string::npos);
    {
        std::ofstream out(dir / "bad.yml");
        out << "#cloud-config\n# {{worker_nmae}}\n";
    }
    ec2.user_data_template = (dir / "bad.yml").string();
    renderer = ci::master::ec2_user_data_renderer(config);
    REQUIRE_FALSE(renderer);
    CHECK(renderer.error().message.find("bad.yml:2:3") != std::string::npos);
    CHECK(renderer.error().message.find("worker_nmae") != std::string::npos);
}

namespace {

// A previous run's instance i-stopped (worker aws/kept), stopped 10 minutes ago: its record and
// its worker's key (its token spent) in the store, and EC2 listing it stopped.
void store_stopped(Fixture& f) {
    auto store = ci::store::open_sqlite(f.config.buildmaster.state);
    REQUIRE_OK(store);
    ci::store::LatentInstance record;
    record.instance_id = "i-stopped";
    record.worker_class = "aws";
    record.client_token = "tok-stopped";
    record.state = "stopped";
    record.launched = f.clock.now() - 1h;
    record.terminated = f.clock.now() - 10min;
    record.worker = "aws/kept";
    record.instance_type = "c3.large";
    REQUIRE_OK((*store)->save_instance(record));
    REQUIRE_OK((*store)->save_worker_key(
        ci::store::WorkerKey{"aws/kept", "aws", std::string(64, 'a'), {}, std::nullopt}));
    ci::aws::Instance listed;
    listed.instance_id = "i-stopped";
    listed.state = "stopped";
    listed.tags = {
        {"ci:master", f.config.buildmaster.host}, {"ci:class", "aws"}, {"ci:worker", "aws/kept"}};
    f.ec2->instances["i-stopped"] = listed;
}

} // namespace

TEST_CASE("ec2 pool: the image is looked up once per image_ttl, and again after InvalidAMIID") {
    Fixture f;
    f.ec2_class().count = 5;
    auto pool = f.pool();
    pool->step(true);
    REQUIRE(f.ec2->runs.size() == 1);
    CHECK(f.ec2->image_calls == 1);
    // A second launch within the TTL takes the cached image.
    f.request();
    f.clock.advance(10s);
    f.ec2->run_error = ci::Error{
        ci::ErrorCode::AwsService,
        "RunInstances: 400 InvalidAMIID.NotFound: The image id '[ami-new]' does not exist",
        400};
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 2);
    CHECK(f.ec2->runs[1].image_id == "ami-new");
    CHECK(f.ec2->image_calls == 1);
    // That launch was refused for its image: the next one looks it up again.
    f.ec2->run_error.reset();
    f.clock.advance(30s); // past the launch backoff
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 3);
    CHECK(f.ec2->image_calls == 2);
    // Another refusal (not about the image) keeps the cache.
    f.request();
    f.clock.advance(10s);
    f.ec2->run_error =
        ci::Error{ci::ErrorCode::AwsService, "RunInstances: 400 InvalidParameterValue: no", 400};
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 4);
    CHECK(f.ec2->image_calls == 2);
    f.ec2->run_error.reset();
    // Past the TTL: looked up again, once for every launch of the step (the instances whose
    // workers never connected were ended meanwhile: three requests wait).
    f.clock.advance(ci::master::Ec2Pool::image_ttl);
    pool->step(false);
    REQUIRE(f.ec2->runs.size() == 7);
    CHECK(f.ec2->image_calls == 3);
}

TEST_CASE("ec2 pool: a stopped instance keeps its worker's key and is started for a request") {
    Fixture f;
    f.ec2_class().max_spot_price.reset(); // on-demand
    f.ec2_class().idle_action = ci::config::Ec2Workers::IdleAction::Stop;
    f.ec2_class().stopped_max = 1;
    // What a master killed -9 while an instance was stopped left.
    store_stopped(f);
    auto pool = f.pool();
    CHECK(f.credentials.token_unused("aws/kept") == false); // adopted: its key is back
    pool->step(true);
    // The waiting request starts it: no RunInstances, no new token, the key kept.
    CHECK(f.ec2->runs.empty());
    CHECK(f.ec2->started == std::vector<std::string>{"i-stopped"});
    CHECK(f.rendered.empty());
    CHECK(f.credentials.token_unused("aws/kept") == false);
    REQUIRE(f.keys().size() == 1);
    CHECK(f.keys()[0].worker == "aws/kept");
    CHECK(f.stored().at(0).state == "pending");
    // Its worker never comes back (missing_timeout 60 s from the start): terminated, and its
    // key goes with it.
    f.clock.advance(61s);
    pool->step(false);
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-stopped"});
    CHECK_FALSE(f.credentials.token_unused("aws/kept").has_value());
    CHECK(std::ranges::none_of(f.keys(), [](const auto& key) { return key.worker == "aws/kept"; }));
}

TEST_CASE("ec2 pool: a stopped instance a class no longer keeps is terminated with its key") {
    Fixture f;
    // The config says terminate now: the stopped instance of the previous run is not kept
    // (nothing waits: with demand it would be started once more).
    f.config.builders.clear();
    store_stopped(f);
    auto pool = f.pool();
    pool->step(true);
    CHECK(std::ranges::find(f.ec2->terminated, "i-stopped") != f.ec2->terminated.end());
    CHECK(f.ec2->started.empty());
    CHECK_FALSE(f.credentials.token_unused("aws/kept").has_value());
    CHECK(std::ranges::none_of(f.keys(), [](const auto& key) { return key.worker == "aws/kept"; }));
}

TEST_CASE("ec2 pool: a stopped instance EC2 refuses to start is terminated, and one launched") {
    Fixture f;
    f.ec2_class().max_spot_price.reset();
    f.ec2_class().idle_action = ci::config::Ec2Workers::IdleAction::Stop;
    f.ec2_class().stopped_max = 1;
    store_stopped(f);
    f.ec2->start_error =
        ci::Error{ci::ErrorCode::AwsService,
                  "StartInstances: 400 InsufficientInstanceCapacity: no capacity in this zone",
                  400};
    auto pool = f.pool();
    pool->step(true);
    CHECK(f.ec2->started == std::vector<std::string>{"i-stopped"});
    CHECK(f.ec2->terminated == std::vector<std::string>{"i-stopped"});
    CHECK_FALSE(f.credentials.token_unused("aws/kept").has_value());
    CHECK(std::ranges::none_of(f.keys(), [](const auto& key) { return key.worker == "aws/kept"; }));
    // The request still waits: the next step launches a fresh instance for it.
    CHECK(f.ec2->runs.empty());
    pool->step(false);
    CHECK(f.ec2->runs.size() == 1);
}
