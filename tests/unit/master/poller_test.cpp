// The master's ref poller, one poll at a time on the test's thread, against a repository made
// with the git CLI, a real SQLite store and a real ingestor: the first reading is the baseline,
// later moves queue builds, vanished refs build nothing, a new poller (a restarted master)
// finds what was pushed since the stored reading, and a poll whose events cannot be written
// keeps its baseline, so that the next poll repeats them.

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/poller.h"
#include "store/ingest.h"
#include "support/git_cli.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using ci::test::git;
using namespace std::chrono_literals;

// A repository (master and feature) and a master's state: a polled repository whose pushes
// build at once (tree_stable_timer 0s).
struct Fixture {
    ci::test::TempDir dir;
    std::filesystem::path repo = dir / "repo";
    std::filesystem::path state = dir / "state.sqlite";
    ci::ManualClock clock{std::chrono::system_clock::from_time_t(1795510800)};
    ci::config::Config config;

    Fixture() {
        std::filesystem::create_directories(repo);
        git(repo, {"init", "-q", "-b", "master"});
        commit("one");
        git(repo, {"branch", "feature"});
        config = parse("repositories: {app: {url: " + repo.string() + ", poll_interval: 1s}}");
    }

    static ci::config::Config parse(const std::string& repositories) {
        auto checked = ci::config::parse_config(repositories + R"(
slaves: {local: {local: true}}
builders: {tests: {repository: app, workers: [local], steps: [{name: t, run: "true"}]}}
schedulers:
  main: {type: branch, repository: app, builders: [tests], branches: ["*"],
         tree_stable_timer: 0s}
)",
                                                "t.yml");
        REQUIRE(checked.ok());
        return *checked.config;
    }

    std::string commit(const std::string& message) const {
        git(repo, {"commit", "-q", "--allow-empty", "-m", message});
        return git(repo, {"rev-parse", "HEAD"});
    }
};

// The branches that pending build requests build, with their revisions.
std::set<std::pair<std::string, std::string>> queued(ci::store::Store& store) {
    auto pending = store.requests(ci::store::RequestState::Pending);
    REQUIRE_OK(pending);
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& request : *pending) {
        out.emplace(request.request.branch, request.request.revision);
    }
    return out;
}

// A master's store, ingestor and poller, as a (re)started master has them.
struct Master {
    std::unique_ptr<ci::store::Store> store;
    std::unique_ptr<ci::store::Ingestor> ingestor;
    std::unique_ptr<ci::master::Poller> poller;

    Master(const Fixture& fixture, ci::store::SqliteOptions options = {}) {
        auto opened = ci::store::open_sqlite(fixture.state, options);
        REQUIRE_OK(opened);
        store = std::move(*opened);
        auto started = ci::store::Ingestor::start(fixture.config, *store, fixture.clock);
        REQUIRE_OK(started);
        ingestor = std::move(*started);
        poller = std::make_unique<ci::master::Poller>(
            fixture.config, *store, *ingestor, fixture.clock, ci::master::GitCredentials{});
    }
};

} // namespace

TEST_CASE("poller: the first reading is the baseline; moves build, vanished refs do not") {
    Fixture fixture;
    Master master(fixture);
    const std::string one = git(fixture.repo, {"rev-parse", "HEAD"});

    // Never polled: the reading is stored, nothing builds.
    REQUIRE_OK(master.poller->poll("app"));
    CHECK(queued(*master.store).empty());
    auto stored = master.store->polled_refs("app");
    REQUIRE_OK(stored);
    REQUIRE(stored->has_value());
    CHECK((*stored)->url == fixture.repo.string());
    CHECK((*stored)->refs ==
          ci::git::RefMap{{"refs/heads/feature", one}, {"refs/heads/master", one}});

    // Nothing moved: nothing builds.
    REQUIRE_OK(master.poller->poll("app"));
    CHECK(queued(*master.store).empty());

    // master moves, a branch and an annotated tag appear, feature vanishes.
    const std::string two = fixture.commit("two");
    git(fixture.repo, {"branch", "new"});
    git(fixture.repo, {"tag", "-a", "-m", "release", "1.0.0"});
    git(fixture.repo, {"branch", "-D", "feature"});
    REQUIRE_OK(master.poller->poll("app"));
    CHECK(queued(*master.store) == std::set<std::pair<std::string, std::string>>{
                                       {"1.0.0", two}, {"master", two}, {"new", two}});
    CHECK((*master.store->polled_refs("app"))->refs == ci::git::RefMap{{"refs/heads/master", two},
                                                                       {"refs/heads/new", two},
                                                                       {"refs/tags/1.0.0", two}});

    auto unknown = master.poller->poll("elsewhere");
    REQUIRE_FALSE(unknown.has_value());
    CHECK(unknown.error().code == ci::ErrorCode::InvalidArgument);
}

TEST_CASE("poller: a restarted master builds what was pushed while it was down") {
    Fixture fixture;
    {
        Master before(fixture);
        REQUIRE_OK(before.poller->poll("app"));
        CHECK(queued(*before.store).empty());
    }
    // Down: a push, and a branch deleted.
    const std::string two = fixture.commit("two");
    git(fixture.repo, {"branch", "-D", "feature"});
    {
        Master after(fixture);
        REQUIRE_OK(after.poller->poll("app"));
        CHECK(queued(*after.store) ==
              std::set<std::pair<std::string, std::string>>{{"master", two}});
    }

    // Another URL for the repository: its first reading is a new baseline, not a push of all.
    const auto moved = fixture.dir / "moved";
    std::filesystem::rename(fixture.repo, moved);
    fixture.repo = moved;
    fixture.config =
        Fixture::parse("repositories: {app: {url: " + moved.string() + ", poll_interval: 1s}}");
    fixture.commit("three");
    Master elsewhere(fixture);
    REQUIRE_OK(elsewhere.poller->poll("app"));
    CHECK(queued(*elsewhere.store).size() == 1); // still only the build of "two"
    CHECK((*elsewhere.store->polled_refs("app"))->url == moved.string());
}

TEST_CASE("poller: a poll that fails keeps its baseline; the next one builds what it missed") {
    Fixture fixture;
    Master master(fixture);
    REQUIRE_OK(master.poller->poll("app"));
    const std::string before = git(fixture.repo, {"rev-parse", "HEAD"});
    const std::string tip = fixture.commit("missed");

    SUBCASE("the remote is unreachable") {
        const auto away = fixture.dir / "away";
        std::filesystem::rename(fixture.repo, away);
        auto failed = master.poller->poll("app");
        std::filesystem::rename(away, fixture.repo);
        REQUIRE_FALSE(failed.has_value());
        CHECK(failed.error().code == ci::ErrorCode::Git);
        CHECK(failed.error().message.find(fixture.repo.string()) != std::string::npos);
    }
    SUBCASE("its events cannot be written, while the baseline could be") {
        // A trigger refuses new changes: the ingestor's write fails, the poller's save would not.
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(fixture.state.c_str(), &db) == SQLITE_OK);
        const auto sql = [&](const char* statement) {
            REQUIRE(sqlite3_exec(db, statement, nullptr, nullptr, nullptr) == SQLITE_OK);
        };
        sql("CREATE TRIGGER refuse BEFORE INSERT ON changes "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
        auto failed = master.poller->poll("app");
        sql("DROP TRIGGER refuse");
        sqlite3_close(db);
        REQUIRE_FALSE(failed.has_value());
        CHECK(failed.error().code == ci::ErrorCode::Store);
        CHECK(failed.error().message.find("refused by the test") != std::string::npos);
    }
    // Not acknowledged, so not the baseline: neither stored nor in memory.
    CHECK((*master.store->polled_refs("app"))->refs.at("refs/heads/master") == before);
    CHECK(queued(*master.store).empty());
    // Nothing new is pushed: the next poll builds what the failed one missed.
    REQUIRE_OK(master.poller->poll("app"));
    CHECK(queued(*master.store) == std::set<std::pair<std::string, std::string>>{{"master", tip}});
    CHECK((*master.store->polled_refs("app"))->refs.at("refs/heads/master") == tip);
}

TEST_CASE("poller: the thread polls at start and stops at once when asked") {
    Fixture fixture;
    Master master(fixture);
    const std::string one = git(fixture.repo, {"rev-parse", "HEAD"});
    std::stop_source stop;
    ci::master::Poller poller(
        fixture.config, *master.store, *master.ingestor, fixture.clock, {}, stop.get_token());
    poller.start();
    // The first poll stores the baseline.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!master.store->polled_refs("app")->has_value() &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(master.store->polled_refs("app")->has_value());
    stop.request_stop(); // the caller's stop signal
    poller.stop();       // joins
    CHECK(queued(*master.store).empty());
}

TEST_CASE("poller: failures back off, doubling up to 5 minutes or the interval") {
    using ci::master::poll_delay;
    CHECK(poll_delay(1s, 0) == 1s);
    CHECK(poll_delay(1s, 1) == 2s);
    CHECK(poll_delay(1s, 3) == 8s);
    CHECK(poll_delay(1s, 8) == 256s);
    CHECK(poll_delay(1s, 9) == 5min);
    CHECK(poll_delay(1s, 1000) == 5min); // no overflow
    CHECK(poll_delay(1min, 2) == 4min);
    CHECK(poll_delay(1min, 3) == 5min);
    CHECK(poll_delay(10min, 0) == 10min);
    CHECK(poll_delay(10min, 4) == 10min); // never sooner than the interval
}
