// The master's parts, each alone: credentials and token rotation, delivery de-duplication,
// counting locks, the worker registry's slots, running builds and their log followers, the
// router.

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/credentials.h"
#include "master/deliveries.h"
#include "master/json.h"
#include "master/locks.h"
#include "master/metrics.h"
#include "master/protocol.h"
#include "master/registry.h"
#include "master/router.h"
#include "master/running.h"
#include "master/triggers.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

using namespace std::chrono_literals;
using ci::master::LogCursor;
using ci::master::LogFormat;
using ci::master::LogOutput;

namespace {

ci::config::Config parts_config() {
    auto checked = ci::config::parse_config(R"(
slaves:
  linux: {passwords: [pw-0, pw-1], max_builds: 2}
  aws: {ami: ci-image, slaves: 2, max_builds: 3}
repositories: {app: {url: /srv/app.git}}
locks: {two: {max_count: 2}, functional: {scope: worker}}
builders: {tests: {repository: app, workers: [linux], locks: [two], steps: [{name: t, run: "true"}]}}
schedulers: {force: {type: force, builders: [tests]}}
)",
                                            "parts.yml");
    REQUIRE(checked.ok());
    return *checked.config;
}

// A stream that records what a follower writes.
class RecordingStream final : public ci::http::ResponseStream {
public:
    bool write(std::string data) override {
        text += data;
        return !gone;
    }
    void finish() override { finished = true; }
    [[nodiscard]] bool closed() const override { return gone; }
    bool when_drained(std::size_t, std::function<void()>) override { return behind; }
    std::string text;
    bool behind = false; // the client has not taken what was written
    bool finished = false;
    bool gone = false;
};

class NullLink final : public ci::master::Link {
public:
    void send(const ci::master::protocol::Message&) override {}
    void close() override {}
};

} // namespace

TEST_CASE("credentials: static passwords, one-time tokens and their rotation") {
    const auto config = parts_config();
    const ci::ManualClock clock(std::chrono::system_clock::now());
    ci::master::Credentials credentials(config, clock);
    namespace protocol = ci::master::protocol;

    auto linux = credentials.login("linux/1", protocol::proof("pw-1", "n1"), "n1");
    REQUIRE(linux.has_value());
    CHECK(linux->worker_class == "linux");
    CHECK(linux->max_builds == 2);
    CHECK_FALSE(linux->rotate);
    CHECK_FALSE(credentials.login("linux/1", protocol::proof("pw-0", "n1"), "n1"));
    CHECK_FALSE(credentials.login("linux/9", protocol::proof("pw-0", "n1"), "n1"));

    CHECK(credentials.issue_token("linux", "", 15min).error().code ==
          ci::ErrorCode::InvalidArgument);
    CHECK(credentials.issue_token("aws", "a/b", 15min).error().code ==
          ci::ErrorCode::InvalidArgument);
    auto issued = credentials.issue_token("aws", "i-1", 15min);
    REQUIRE(issued.has_value());
    CHECK(issued->name == "aws/i-1");
    CHECK(issued->token.size() == 64);
    CHECK(credentials.issue_token("aws", "i-1", 15min).error().code == ci::ErrorCode::Conflict);

    // The token logs in once; the next login proves the secret both sides derived.
    auto first = credentials.login("aws/i-1", protocol::proof(issued->token, "n2"), "n2");
    REQUIRE(first.has_value());
    CHECK(first->rotate);
    CHECK(first->max_builds == 3);
    CHECK_FALSE(credentials.login("aws/i-1", protocol::proof(issued->token, "n3"), "n3"));
    const auto second_secret = protocol::next_secret(issued->token, "n2");
    REQUIRE(credentials.login("aws/i-1", protocol::proof(second_secret, "n4"), "n4"));
    // The welcome of that login may be lost: the secret before stays valid once.
    const auto third_secret = protocol::next_secret(second_secret, "n4");
    REQUIRE(credentials.login("aws/i-1", protocol::proof(second_secret, "n5"), "n5"));
    CHECK(credentials.login(
        "aws/i-1", protocol::proof(protocol::next_secret(second_secret, "n5"), "n6"), "n6"));
    CHECK_FALSE(credentials.login("aws/i-1", protocol::proof(third_secret, "n7"), "n7"));
}

TEST_CASE("credentials: a one-time token expires unused") {
    const auto config = parts_config();
    ci::ManualClock clock(std::chrono::system_clock::now());
    ci::master::Credentials credentials(config, clock);
    auto issued = credentials.issue_token("aws", "", 1min);
    REQUIRE(issued.has_value());
    CHECK(issued->name.starts_with("aws/"));
    clock.advance(2min);
    CHECK_FALSE(
        credentials.login(issued->name, ci::master::protocol::proof(issued->token, "n"), "n"));
}

TEST_CASE("credentials: latent workers' keys are stored, never their secrets, and survive") {
    const auto config = parts_config();
    const ci::ManualClock clock(std::chrono::system_clock::now());
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    const auto connection = [&] {
        auto store = ci::store::open_sqlite(path);
        REQUIRE_OK(store);
        return std::move(*store);
    };
    namespace protocol = ci::master::protocol;
    std::string secret;
    {
        ci::master::Credentials before(config, clock);
        REQUIRE_OK(before.persist_to(connection(), {}));
        auto issued = before.issue_token("aws", "i-1", 15min);
        REQUIRE(issued.has_value());
        auto gone = before.issue_token("aws", "i-2", 15min);
        REQUIRE(gone.has_value());
        auto keys = connection()->worker_keys();
        REQUIRE(keys->size() == 2);
        CHECK((*keys)[0].key == protocol::secret_key(issued->token));
        CHECK((*keys)[0].key != issued->token);
        CHECK((*keys)[0].token_expires.has_value());
        REQUIRE(before.token_unused("aws/i-1") == std::optional<bool>(true));
        REQUIRE(before.login("aws/i-1", protocol::proof(issued->token, "n1"), "n1"));
        CHECK(before.token_unused("aws/i-1") == std::optional<bool>(false));
        CHECK_FALSE(before.token_unused("aws/none").has_value());
        secret = protocol::next_secret(issued->token, "n1");
        keys = connection()->worker_keys();
        CHECK((*keys)[0].key == protocol::secret_key(secret));
        CHECK((*keys)[0].previous_key.empty()); // a spent token is not kept
        CHECK_FALSE((*keys)[0].token_expires.has_value());
        // Revoked: its key goes too.
        before.revoke("aws/i-2");
        CHECK(connection()->worker_keys()->size() == 1);
        // (the master is killed here: nothing else is written)
    }
    REQUIRE_OK(connection()->save_worker_key({"aws/i-3", "aws", std::string(64, 'f'), "", {}}));
    ci::master::Credentials after(config, clock);
    REQUIRE_OK(after.persist_to(connection(), {"aws/i-1"}));
    // The adopted worker logs in with the secret it derived before the restart; the one not
    // adopted is refused and its key deleted.
    CHECK(after.login("aws/i-1", protocol::proof(secret, "n2"), "n2"));
    CHECK_FALSE(after.token_unused("aws/i-3").has_value());
    const auto keys = connection()->worker_keys();
    REQUIRE(keys->size() == 1);
    CHECK((*keys)[0].worker == "aws/i-1");
    CHECK((*keys)[0].key == protocol::secret_key(protocol::next_secret(secret, "n2")));
    CHECK((*keys)[0].previous_key == protocol::secret_key(secret));
}

TEST_CASE("deliveries: new, in flight, stored, forgotten; the newest are kept") {
    using Seen = ci::master::Deliveries::Seen;
    ci::master::Deliveries deliveries(2);
    CHECK(deliveries.begin("a") == Seen::New);
    CHECK(deliveries.begin("a") == Seen::InFlight);
    deliveries.forget("a");
    CHECK(deliveries.begin("a") == Seen::New);
    deliveries.stored("a");
    CHECK(deliveries.begin("a") == Seen::Stored);
    deliveries.load({"b", "c"}); // "a" is the oldest of three: forgotten
    CHECK(deliveries.begin("c") == Seen::Stored);
    CHECK(deliveries.begin("a") == Seen::New);
}

TEST_CASE("locks: all or nothing, up to each lock's count") {
    const auto config = parts_config();
    ci::master::LockTable locks(config);
    CHECK(locks.try_acquire({"two"}, "linux/0"));
    CHECK(locks.try_acquire({"two"}, "linux/1"));
    CHECK_FALSE(locks.try_acquire({"two"}, "linux/0"));
    CHECK(locks.try_acquire({"unknown"}, "linux/0")); // a lock the config does not define counts 1
    CHECK_FALSE(locks.try_acquire({"unknown", "two"}, "linux/1"));
    CHECK(locks.in_use() == std::map<std::string, int>{{"two", 2}, {"unknown", 1}});
    locks.release({"two"}, "linux/1");
    CHECK(locks.try_acquire({"two"}, "linux/1"));
    locks.release({"two", "two", "unknown"}, "linux/0");
    CHECK(locks.in_use().empty());
}

TEST_CASE("locks: a lock of scope worker is counted on each worker apart") {
    const auto config = parts_config();
    REQUIRE(config.locks.at("functional").scope == ci::config::Lock::Scope::Worker);
    ci::master::LockTable locks(config);
    CHECK(locks.try_acquire({"functional"}, "linux/0"));
    CHECK_FALSE(locks.try_acquire({"functional"}, "linux/0")); // one holder per worker
    CHECK(locks.try_acquire({"functional"}, "linux/1"));       // another worker: its own
    // All or nothing: a master-wide lock that has room does not keep a count when the
    // per-worker one has none.
    CHECK_FALSE(locks.try_acquire({"two", "functional"}, "linux/1"));
    CHECK(locks.in_use().size() == 2);
    CHECK(locks.in_use().at(ci::master::lock_key(config, "functional", "linux/0")) == 1);
    CHECK(ci::master::lock_key(config, "functional", "linux/0") !=
          ci::master::lock_key(config, "functional", "linux/1"));
    CHECK(ci::master::lock_key(config, "two", "linux/0") == "two");
    locks.release({"functional"}, "linux/0");
    CHECK(locks.try_acquire({"functional"}, "linux/0"));
    CHECK_FALSE(locks.try_acquire({"functional"}, "linux/1"));
}

TEST_CASE("registry: reserved slots count until attached; a worker that left gets no build") {
    ci::master::WorkerRegistry registry;
    auto link = std::make_shared<NullLink>();
    CHECK_FALSE(registry.add("linux/0", "linux", 2, false, link).has_value());
    CHECK(registry.reserve("linux/0"));
    CHECK(registry.reserve("linux/0"));
    CHECK_FALSE(registry.reserve("linux/0")); // both slots held
    CHECK_FALSE(registry.any_free_slot());
    CHECK(registry.attach("linux/0", 11) == link);
    registry.unreserve("linux/0");
    CHECK(registry.loads().at(0).running == 1);
    CHECK(registry.reserve("linux/0"));

    // The same name connects again: the new link wins and the old builds are handed back.
    auto again = std::make_shared<NullLink>();
    auto replaced = registry.add("linux/0", "linux", 2, false, again);
    REQUIRE(replaced.has_value());
    CHECK(replaced->link == link);
    CHECK(replaced->builds == std::vector<std::int64_t>{11});
    CHECK_FALSE(registry.remove("linux/0", link.get()).has_value()); // the old link: ignored
    CHECK(registry.heard("linux/0", again.get()));
    CHECK_FALSE(registry.heard("linux/0", link.get()));
    registry.drain("linux/0");
    CHECK_FALSE(registry.reserve("linux/0"));
    CHECK(std::string(registry.view("linux/0")->state()) == "draining");
    CHECK(registry.remove("linux/0", again.get()) == std::vector<std::int64_t>{});
    CHECK(registry.attach("linux/0", 12) == nullptr);
}

TEST_CASE("running builds: a follower primed late still sees the log in order, once") {
    ci::master::RunningBuilds running(16); // a small memory share, to see chunks let go
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{7, 1, "tests", "linux/0", t, {}, {}, {}, {}, {}}, {"two"});
    CHECK(running.runs_on(7, "linux/0"));
    CHECK_FALSE(running.runs_on(7, "linux/1"));
    REQUIRE(running.step_started(7, 1, "test", t).has_value());
    running.log(7, 1, 0, "aaaaaaaaaa\n");
    running.log(7, 1, 1, "bbbbbbbbbb\n");
    running.log(7, 1, 1, "a chunk sent twice is ignored\n");
    running.logged(7, 1, 0); // chunk 0 is on disk: over its share, memory lets it go

    auto stream = std::make_shared<RecordingStream>();
    auto output = std::make_shared<LogOutput>(stream, LogFormat::Text, LogCursor{});
    auto follower = std::make_shared<ci::master::Follower>(output);
    auto snapshot = running.snapshot(7, 1, follower);
    REQUIRE(snapshot.has_value());
    CHECK(snapshot->live);
    CHECK(snapshot->in_store_before == 1);
    CHECK(snapshot->memory == "bbbbbbbbbb\n");
    CHECK(snapshot->memory_first == 1);
    CHECK(snapshot->next == 2);
    CHECK(running.snapshot(7, 1, nullptr, 2)->memory.empty()); // from chunk 2 on: nothing yet
    running.log(7, 1, 2, "cccccccccc\n"); // arrives before the follower is primed
    CHECK(stream->text.empty());
    CHECK(output->write(0, 1, "aaaaaaaaaa\n")); // chunk 0 read from the store
    CHECK(output->write(snapshot->memory_first, snapshot->next, snapshot->memory));
    follower->prime();
    CHECK(stream->text == "aaaaaaaaaa\nbbbbbbbbbb\ncccccccccc\n");
    running.log(7, 1, 3, "dd\n");
    CHECK(stream->text.ends_with("cccccccccc\ndd\n"));

    const auto step = running.step_finished(7, 1, ci::BuildResult::Failure, 3, t);
    REQUIRE(step.has_value());
    CHECK(step->name == "test");
    CHECK(step->started == t);
    CHECK(stream->finished);

    REQUIRE(running.request_stop(7) == std::optional<std::string>("linux/0"));
    auto ended = running.end(7, ci::BuildResult::Failure, t);
    REQUIRE(ended.has_value());
    CHECK(ended->build.result == ci::BuildResult::Cancelled); // stopped on request
    CHECK(ended->locks == std::vector<std::string>{"two"});
    CHECK_FALSE(running.end(7, ci::BuildResult::Success, t).has_value()); // ends once
    CHECK(running.size() == 0);
    CHECK(running.snapshot(7, 1, nullptr).has_value()); // readable until forgotten
    running.forget(7);
    CHECK_FALSE(running.snapshot(7, 1, nullptr).has_value());
}

TEST_CASE("running builds: events followers get an end event with the step's result") {
    ci::master::RunningBuilds running;
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{8, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {});
    auto stream = std::make_shared<RecordingStream>();
    auto follower = std::make_shared<ci::master::Follower>(
        std::make_shared<LogOutput>(stream, LogFormat::TextEvents, LogCursor{}));
    REQUIRE(running.snapshot(8, 2, follower)->live); // step 2 has not started: it waits
    follower->prime();
    REQUIRE(running.step_started(8, 2, "lint", t));
    running.log(8, 2, 0, "line 1\nline 2\n");
    CHECK(running.end(8, ci::BuildResult::Retry, t).has_value());
    CHECK(stream->text == "id: 1\nevent: log\ndata: line 1\ndata: line 2\ndata: \n\n"
                          "event: end\ndata: retry\n\n");
    CHECK(stream->finished);
}

TEST_CASE("log output: HTML events carry cursors a reconnecting client resumes from") {
    auto stream = std::make_shared<RecordingStream>();
    LogOutput first(stream, LogFormat::HtmlEvents, LogCursor{});
    CHECK(first.write(0, 1, "\x1b[31mred\nsec"));
    CHECK(first.write(1, 2, "ond <b>\nthird"));
    first.end("success");
    CHECK(stream->text == "id: 0.9.2.38;5;1\nevent: lines\ndata: 1\n"
                          "data: <span class=\"fg1\">red</span>\n\n"
                          "event: partial\ndata: <span class=\"fg1\">sec</span>\n\n"
                          "id: 1.8.3.38;5;1\nevent: lines\ndata: 2\n"
                          "data: <span class=\"fg1\">second &lt;b&gt;</span>\n\n"
                          "event: partial\ndata: <span class=\"fg1\">third</span>\n\n"
                          "event: lines\ndata: 3\ndata: <span class=\"fg1\">third</span>\n\n"
                          "event: end\ndata: success\n\n");
    CHECK(stream->finished);

    // Back from the second id: chunk 0 is dropped, chunk 1's first 8 bytes skipped; line 3 is
    // red without the escape that made it so.
    const auto cursor = LogCursor::parse("1.8.3.38;5;1");
    REQUIRE(cursor.has_value());
    auto again = std::make_shared<RecordingStream>();
    LogOutput second(again, LogFormat::HtmlEvents, *cursor);
    CHECK(second.write(0, 1, "\x1b[31mred\nsec"));
    CHECK(second.write(1, 2, "ond <b>\nthird\n"));
    second.end("failure");
    CHECK(again->text == "id: 2.0.4.38;5;1\nevent: lines\ndata: 3\n"
                         "data: <span class=\"fg1\">third</span>\n\n"
                         "event: end\ndata: failure\n\n");
}

TEST_CASE("running builds: a follower that falls behind is cut off, not buffered") {
    ci::master::RunningBuilds running;
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{9, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {});
    REQUIRE(running.step_started(9, 1, "big", t));

    SUBCASE("while it reads") {
        auto stream = std::make_shared<RecordingStream>();
        auto follower = std::make_shared<ci::master::Follower>(
            std::make_shared<LogOutput>(stream, LogFormat::TextEvents, LogCursor{}));
        REQUIRE(running.snapshot(9, 1, follower)->live);
        follower->prime();
        running.log(9, 1, 0, "taken\n");
        stream->behind = true; // the client stops reading
        running.log(9, 1, 1, "not queued\n");
        running.log(9, 1, 2, "nor this\n");
        CHECK(stream->text.find("data: taken") != std::string::npos);
        CHECK(stream->text.find("not queued") == std::string::npos);
        CHECK(stream->text.find("event: note\ndata: this reader fell behind") != std::string::npos);
        CHECK(stream->finished);
    }
    SUBCASE("while it is primed") {
        auto stream = std::make_shared<RecordingStream>();
        auto follower = std::make_shared<ci::master::Follower>(
            std::make_shared<LogOutput>(stream, LogFormat::Text, LogCursor{}));
        REQUIRE(running.snapshot(9, 1, follower)->live);
        const std::string big(ci::master::Follower::max_behind / 2 + 1, 'x');
        running.log(9, 1, 0, big);
        running.log(9, 1, 1, big); // held back past max_behind: dropped
        follower->prime();
        CHECK(stream->text.find(big) == std::string::npos);
        CHECK(stream->text.find("reconnect") != std::string::npos);
        CHECK(stream->finished);
    }
}

TEST_CASE("running builds: a build stopped on request whose worker is lost is not retried") {
    ci::master::RunningBuilds running;
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{10, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {});
    REQUIRE(running.request_stop(10) == std::optional<std::string>("w"));
    auto ended = running.end(10, ci::BuildResult::Retry, t); // the worker went away
    REQUIRE(ended.has_value());
    CHECK(ended->build.result == ci::BuildResult::Cancelled);
    CHECK_FALSE(ended->retries_spent);
}

TEST_CASE("running builds: log file watchers register while their step may still write") {
    struct Watcher final : ci::master::LogfileWatcher {
        void stored() override {}
        void ended() override {}
    };
    ci::master::RunningBuilds running;
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{12, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {});
    const auto early = std::make_shared<Watcher>();
    const auto other = std::make_shared<Watcher>();
    CHECK(running.watch_logfile(12, 1, "test.log", early)); // step 1 has not started yet
    REQUIRE(running.step_started(12, 1, "test", t));
    CHECK(running.watch_logfile(12, 2, "other.log", other));
    using Watchers = std::vector<std::shared_ptr<ci::master::LogfileWatcher>>;
    CHECK(running.logfile_watchers(12, 1, "test.log") == Watchers{early});
    CHECK(running.logfile_watchers(12, 1, "other.log").empty());
    CHECK(running.logfile_watchers(99, 1, "test.log").empty()); // no such build
    REQUIRE(running.step_finished(12, 1, ci::BuildResult::Success, 0, t));
    // The step ended: nobody registers for it any more; its watchers are taken once.
    CHECK_FALSE(running.watch_logfile(12, 1, "test.log", std::make_shared<Watcher>()));
    CHECK(running.take_logfile_watchers(12, 1) == Watchers{early});
    CHECK(running.take_logfile_watchers(12, 1).empty());
    CHECK(running.logfile_watchers(12, 1, "test.log").empty());
    // The build's end takes every step's.
    REQUIRE(running.end(12, ci::BuildResult::Success, t));
    CHECK_FALSE(running.watch_logfile(12, 3, "late.log", std::make_shared<Watcher>()));
    CHECK(running.take_logfile_watchers(12, -1) == Watchers{other});
}

TEST_CASE("running builds: a build on its request's last try ends exception, not retry") {
    ci::master::RunningBuilds running;
    const auto t = std::chrono::system_clock::now();
    running.add(ci::store::Build{9, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {}, true);
    auto last = running.end(9, ci::BuildResult::Retry, t);
    REQUIRE(last.has_value());
    CHECK(last->build.result == ci::BuildResult::Exception);
    CHECK(last->retries_spent);
    // Other results stay as they are, and a build with tries left is retried.
    running.add(ci::store::Build{10, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {}, true);
    CHECK(running.end(10, ci::BuildResult::Failure, t)->build.result == ci::BuildResult::Failure);
    running.add(ci::store::Build{11, 1, "tests", "w", t, {}, {}, {}, {}, {}}, {});
    auto again = running.end(11, ci::BuildResult::Retry, t);
    CHECK(again->build.result == ci::BuildResult::Retry);
    CHECK_FALSE(again->retries_spent);
}

TEST_CASE("json answers: strings that are not UTF-8 go out repaired (U+FFFD)") {
    // What came in before text was repaired at the door, or from a worker, is still valid JSON.
    ci::master::Json json;
    json.begin().field("step", std::string_view("caf\xe9")).field("ok", "caf\xc3\xa9").end();
    CHECK(json.text() == "{\"step\":\"caf\xef\xbf\xbd\",\"ok\":\"caf\xc3\xa9\"}");
}

TEST_CASE("router: the listed endpoints, path segments and integer captures") {
    // Dispatching needs the HTTP server's Reply: master_routes_test drives the router through
    // real requests (404, 405 with Allow, auth on every POST). Here: the table's own parts.
    ci::master::Router router(
        [](const ci::http::ServerRequest&) { return ci::master::Verdict::pass(); });
    const auto ignore =
        [](ci::http::ServerRequest&, const ci::master::PathParams&, const ci::http::Reply&) {};
    router.add("GET", "/api/v1/builds/{id}/steps/{n}/log", ignore, false, "log");
    router.add("POST", "/hidden", ignore);
    router.add("POST", "/api/v1/builds/{id}/stop", ignore, true, "stop");
    CHECK(router.endpoints() == std::vector<std::string>{"log", "stop"});
    CHECK(ci::master::path_segments("//api/v1/builds/") ==
          std::vector<std::string_view>{"api", "v1", "builds"});
    CHECK(ci::master::path_segments("/").empty());
    ci::master::PathParams params;
    params.add("id", "-3");
    params.add("n", "12x");
    params.add("ok", "42");
    CHECK_FALSE(params.integer("id").has_value());
    CHECK_FALSE(params.integer("n").has_value());
    CHECK_FALSE(params.integer("missing").has_value());
    CHECK(params.integer("ok") == std::optional<std::int64_t>(42));
    CHECK(params.get("n") == "12x");
}

namespace {

ci::config::Config trigger_config() {
    auto checked = ci::config::parse_config(R"(
slaves:
  linux: {passwords: [pw-0], max_builds: 2}
repositories: {app: {url: /srv/app.git, default_branch: main}}
builders:
  package:
    repository: app
    workers: [linux]
    steps: [{name: b, run: "true"}, {name: t, trigger: {builders: [acceptance, docs]}}]
  acceptance: {repository: app, workers: [linux], steps: [{name: t, run: "true"}]}
  docs: {repository: app, workers: [linux], merge_target: none, steps: [{name: t, run: "true"}]}
schedulers:
  later: {type: triggerable, builders: [acceptance]}
  docs-too: {type: triggerable, builders: [docs]}
)",
                                            "triggers.yml");
    REQUIRE(checked.ok());
    return *checked.config;
}

} // namespace

TEST_CASE("triggers: requests for the same tree, pinned, with the triggering build's properties") {
    const auto config = trigger_config();
    ci::store::BuildRequest source;
    source.id = 41;
    source.request.builder = "package";
    source.request.repository = "app";
    source.request.branch = "feature/x";
    source.request.change_ids = {5, 6};
    source.request.properties = {{"flavour", "vanilla"}};
    // Its merge target: the rule's (feature branches merge the default branch).
    CHECK(ci::master::merge_target_of(config, source, false) == "main");
    const ci::sched::PinnedMerge pinned{"main", std::string(40, 'c')};
    const auto out = ci::master::triggered_requests(
        config, source, *config.builders.at("package").steps[1].trigger, 2, 99, "abc", pinned);
    REQUIRE(out.size() == 2);
    CHECK(out[0].builder == "acceptance");
    CHECK(out[0].scheduler == "later");
    CHECK(out[1].scheduler == "docs-too");
    for (const auto& request : out) {
        CHECK(request.repository == "app");
        CHECK(request.branch == "feature/x");
        CHECK(request.revision == "abc");
        CHECK(request.change_ids == std::vector<std::int64_t>{5, 6});
        CHECK(request.properties == source.request.properties);
        CHECK(request.pinned_merge == std::optional(pinned));
        CHECK(request.triggered_by_request == 41);
        CHECK(request.triggered_by_step == 2);
        CHECK_FALSE(request.collapsible);
        CHECK(request.reason == "triggered by build 99 (package, step 2)");
    }
    // A triggered build merges what is pinned, whatever its own builder's rule (docs: none).
    ci::store::BuildRequest triggered{7, out[1], {}, {}, {}, {}};
    CHECK(ci::master::merge_target_of(config, triggered, false) == "main");
    triggered.request.pinned_merge = ci::sched::PinnedMerge{"", ""};
    CHECK(ci::master::merge_target_of(config, triggered, false) == std::nullopt);
    triggered.request.pinned_merge.reset();
    CHECK(ci::master::merge_target_of(config, triggered, false) == std::nullopt); // its rule
}

TEST_CASE("triggers: a waiting step is answered once every request ended, with the worst") {
    using ci::BuildResult;
    using ci::master::TriggeredEnd;
    std::map<std::int64_t, TriggeredEnd> ends;
    CHECK_FALSE(ci::master::wait_answer(9, 2, {3, 4}, ends).has_value());
    ends[3] = TriggeredEnd{3, "acceptance", 11, BuildResult::Success};
    CHECK_FALSE(ci::master::wait_answer(9, 2, {3, 4}, ends).has_value());
    ends[4] = TriggeredEnd{4, "docs", 12, BuildResult::Failure};
    auto answer = ci::master::wait_answer(9, 2, {3, 4}, ends);
    REQUIRE(answer.has_value());
    CHECK(answer->build == 9);
    CHECK(answer->step == 2);
    CHECK(answer->result == BuildResult::Failure);
    CHECK(answer->description ==
          "acceptance: success (request 3, build 11); docs: failure (request 4, build 12)");
    ends[4] = TriggeredEnd{4, "docs", 0, BuildResult::Cancelled}; // cancelled while pending
    answer = ci::master::wait_answer(9, 2, {3, 4}, ends);
    CHECK(answer->result == BuildResult::Cancelled);
    CHECK(answer->description.ends_with("docs: cancelled (request 4)"));
    CHECK(ci::master::wait_answer(9, 2, {3}, ends)->result == BuildResult::Success);
}

TEST_CASE("metrics: builds are counted by worker class and branch type") {
    const auto config = trigger_config();
    using ci::master::branch_type;
    CHECK(branch_type(config, "app", "main", false) == "master");
    CHECK(branch_type(config, "app", "master", false) == "other"); // not app's default branch
    CHECK(branch_type(config, "app", "main", true) == "other");    // a tag named main
    CHECK(branch_type(config, "app", "release/1.2", false) == "release");
    CHECK(branch_type(config, "app", "1.2.3rc1", true) == "release");
    CHECK(branch_type(config, "app", "1.2.3.post1", false) == "release");
    CHECK(branch_type(config, "app", "v1.2.3", true) == "other");
    CHECK(branch_type(config, "app", "feature/x", false) == "other");
    CHECK(branch_type(config, "", "", false) == "other"); // no repository

    ci::master::Metrics metrics;
    metrics.build_finished({"acceptance", "linux", "release"}, ci::BuildResult::Success, 2);
    metrics.build_finished({"acceptance", "linux", "release"}, ci::BuildResult::Success, 700);
    metrics.build_finished({"acceptance", "aws", "other"}, ci::BuildResult::Failure, 2);
    const auto text = ci::master::prometheus_text(metrics.snapshot(), {});
    CHECK(text.find("ci_builds_finished_total{builder=\"acceptance\",worker_class=\"linux\","
                    "branch_type=\"release\",result=\"success\"} 2\n") != std::string::npos);
    CHECK(text.find("ci_builds_finished_total{builder=\"acceptance\",worker_class=\"aws\","
                    "branch_type=\"other\",result=\"failure\"} 1\n") != std::string::npos);
    CHECK(text.find("ci_build_duration_seconds_bucket{builder=\"acceptance\",worker_class="
                    "\"linux\",branch_type=\"release\",le=\"600\"} 1\n") != std::string::npos);
    CHECK(text.find("ci_build_duration_seconds_count{builder=\"acceptance\",worker_class="
                    "\"linux\",branch_type=\"release\"} 2\n") != std::string::npos);
}

TEST_CASE("metrics: uploads by builder, and the bytes kept as results") {
    ci::master::Metrics metrics;
    CHECK(ci::master::prometheus_text(metrics.snapshot(), {}).find("ci_upload_bytes_total{") ==
          std::string::npos);     // no upload yet: no series
    metrics.results_bytes = 1000; // a sweep measured it
    metrics.upload_received("pkg/deb", 300);
    metrics.upload_received("pkg/deb", 200);
    metrics.upload_stored("pkg/deb", 7);
    metrics.upload_failed("pkg/deb");
    metrics.upload_failed("docs");
    const auto text = ci::master::prometheus_text(metrics.snapshot(), {});
    INFO(text);
    CHECK(text.find("# TYPE ci_upload_bytes_total counter\n") != std::string::npos);
    CHECK(text.find("ci_upload_bytes_total{builder=\"pkg/deb\"} 500\n") != std::string::npos);
    CHECK(text.find("ci_upload_files_total{builder=\"pkg/deb\"} 7\n") != std::string::npos);
    CHECK(text.find("ci_upload_failures_total{builder=\"pkg/deb\"} 1\n") != std::string::npos);
    CHECK(text.find("ci_upload_failures_total{builder=\"docs\"} 1\n") != std::string::npos);
    CHECK(text.find("ci_upload_bytes_total{builder=\"docs\"} 0\n") != std::string::npos);
    CHECK(text.find("# TYPE ci_results_bytes gauge\n") != std::string::npos);
    CHECK(text.find("ci_results_bytes 1500\n") != std::string::npos); // what uploads wrote since
}

namespace {

// The fields of a Server-Sent Events stream as a browser reads them (the WHATWG rules: a line
// ends at CR, LF or CRLF; an empty line ends an event): (event, data) per event.
std::vector<std::pair<std::string, std::string>> read_sse(std::string_view stream) {
    std::vector<std::pair<std::string, std::string>> events;
    std::string event;
    std::string data;
    bool has_data = false;
    while (!stream.empty()) {
        const auto end = stream.find_first_of("\r\n");
        const auto line = stream.substr(0, end);
        if (end == std::string_view::npos) {
            break;
        }
        stream.remove_prefix(end + (stream.substr(end, 2) == "\r\n" ? 2 : 1));
        if (line.empty()) {
            if (has_data) {
                events.emplace_back(event.empty() ? "message" : event, data);
            }
            event.clear();
            data.clear();
            has_data = false;
            continue;
        }
        const auto colon = line.find(':');
        const auto field = line.substr(0, colon);
        auto value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
        if (value.starts_with(' ')) {
            value.remove_prefix(1);
        }
        if (field == "event") {
            event = value;
        } else if (field == "data") {
            data += has_data ? "\n" : "";
            data += value;
            has_data = true;
        }
    }
    return events;
}

} // namespace

TEST_CASE("sse_event: a log's CR, LF or CRLF ends a data line; the log adds no field or event") {
    // A step printed this to forge the end of its own step (the attack of the UI's review).
    const auto forged = ci::master::sse_event("log", "ok\revent: end\rdata: success\r\r\nnext\n");
    const auto events = read_sse(forged);
    REQUIRE(events.size() == 1);
    CHECK(events[0].first == "log");
    CHECK(events[0].second == "ok\nevent: end\ndata: success\n\nnext\n");
    CHECK(read_sse(ci::master::sse_event("log", "a\r\nb")) ==
          std::vector<std::pair<std::string, std::string>>{{"log", "a\nb"}});
    CHECK(read_sse(ci::master::sse_event("end", "success")) ==
          std::vector<std::pair<std::string, std::string>>{{"end", "success"}});
}
