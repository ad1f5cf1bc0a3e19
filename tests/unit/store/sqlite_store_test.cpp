// The SQLite store: what the scheduler writes survives a restart, requests are claimed once,
// and bad files (newer, corrupt, locked, read-only) give clear errors.

#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "store/ingest.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
const auto t0 = std::chrono::system_clock::from_time_t(1795510800);

std::unique_ptr<ci::store::Store> open(const std::filesystem::path& path) {
    auto store = ci::store::open_sqlite(path);
    REQUIRE_OK(store);
    return std::move(*store);
}

// SQL that takes a database back to schema 6: what migration 7 (trigger steps) adds is gone.
constexpr const char* undo_schema_7 =
    "DROP INDEX build_requests_by_trigger; ALTER TABLE build_requests DROP COLUMN pinned_target; "
    "ALTER TABLE build_requests DROP COLUMN pinned_target_revision; ALTER TABLE build_requests "
    "DROP COLUMN triggered_by_request; ALTER TABLE build_requests DROP COLUMN "
    "triggered_by_step; ";

ci::sched::RequestBuild
request_for(const std::string& builder, const std::string& revision, bool collapsible = false) {
    ci::sched::RequestBuild build;
    build.scheduler = "main";
    build.builder = builder;
    build.repository = "app";
    build.branch = "master";
    build.revision = revision;
    build.change_ids = {1, 2};
    build.reason = "branch master changed (2 changes)";
    build.properties = {{"k", "v"}};
    build.collapsible = collapsible;
    return build;
}

// A change of branch `feature` of `app`, at t0.
ci::sched::Change feature_change(std::int64_t id, const std::string& revision) {
    ci::sched::Change change;
    change.id = id;
    change.repository = "app";
    change.branch = "feature";
    change.revision = revision;
    change.when = t0;
    return change;
}

// Runs `body` as a user that cannot write files root owns (uid 65534) when the tests run as
// root, and returns what it printed; otherwise runs it directly.
std::string as_unprivileged(const std::function<std::string()>& body) {
    if (::getuid() != 0) {
        return body();
    }
    std::array<int, 2> fds{};
    REQUIRE(::pipe(fds.data()) == 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        std::string out = "setuid failed";
        if (::setgid(65534) == 0 && ::setuid(65534) == 0) {
            out = body();
        }
        (void)::write(fds[1], out.data(), out.size());
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string out;
    std::array<char, 4096> buffer; // not zero-filled: read() writes what is used
    ssize_t n = 0;
    while ((n = ::read(fds[0], buffer.data(), buffer.size())) > 0) {
        out.append(buffer.data(), static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return out;
}

} // namespace

TEST_CASE("store: changes, waits, schedules and requests survive a restart") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    ci::sched::Change change;
    {
        auto store = open(path);
        auto ids = store->reserve_change_ids(2);
        REQUIRE_OK(ids);
        CHECK(*ids == std::vector<std::int64_t>{1, 2});
        change.id = (*ids)[0];
        change.repository = "app";
        change.branch = "master";
        change.revision = "abc";
        change.author = "Alice <alice@example.org>";
        change.comments = "Fix it";
        change.files = std::vector<std::string>{"src/a.cpp", "docs/\"quoted\".rst"};
        change.when = t0;
        ci::sched::Change polled = change;
        polled.id = (*ids)[1];
        polled.files.reset();

        ci::sched::Wait wait{"main", "app", "master", false, t0, t0 + 5s, "abc", {1, 2}};
        ci::store::Batch batch;
        batch.changes = {change, polled};
        batch.actions = {ci::sched::SaveWait{wait},
                         ci::sched::SavePeriodic{"nightly", t0 + 1h},
                         request_for("tests", "abc"),
                         request_for("docs", "abc")};
        auto written = store->write({batch}, t0);
        REQUIRE_OK(written);
        CHECK(written->change_ids == std::vector<std::int64_t>{1, 2});
        CHECK(written->request_ids.size() == 2);
    }
    auto store = open(path);
    auto state = store->scheduler_state();
    REQUIRE_OK(state);
    REQUIRE(state->waits.size() == 1);
    CHECK(state->waits[0].deadline == t0 + 5s);
    CHECK(state->waits[0].change_ids == std::vector<std::int64_t>{1, 2});
    CHECK(state->periodic_next_runs.at("nightly") == t0 + 1h);
    auto stored = store->change(1);
    REQUIRE_OK(stored);
    REQUIRE(stored->has_value());
    CHECK(**stored == change);
    auto polled = store->change(2);
    REQUIRE_OK(polled);
    CHECK_FALSE((*polled)->files.has_value());
    auto none = store->change(99);
    REQUIRE_OK(none);
    CHECK_FALSE(none->has_value());

    auto pending = store->requests(ci::store::RequestState::Pending);
    REQUIRE_OK(pending);
    REQUIRE(pending->size() == 2);
    CHECK((*pending)[0].request == request_for("tests", "abc"));
    CHECK((*pending)[0].submitted == t0);

    // Clearing the wait is stored too; ids keep increasing after a restart.
    REQUIRE_OK(store->write(
        {ci::store::Batch{{}, {ci::sched::ClearWait{"main", "app", "master"}}, {}}}, t0));
    CHECK(store->scheduler_state()->waits.empty());
    CHECK(*store->reserve_change_ids(1) == std::vector<std::int64_t>{3});
}

TEST_CASE("store: claiming, finishing and cancelling requests") {
    ci::test::TempDir dir;
    auto store = open(dir / "state.sqlite");
    ci::store::Batch batch;
    batch.actions = {
        request_for("tests", "1"), request_for("docs", "2"), request_for("tests", "3")};
    REQUIRE_OK(store->write({batch}, t0));

    auto docs = store->claim({"docs"}, "dispatcher-a");
    REQUIRE_OK(docs);
    REQUIRE(docs->has_value());
    CHECK((*docs)->request.revision == "2");
    CHECK((*docs)->state == ci::store::RequestState::Claimed);
    CHECK((*docs)->claimed_by == "dispatcher-a");
    CHECK_FALSE(store->claim({"docs"}, "dispatcher-a")->has_value());

    auto first = store->claim({"tests", "docs"}, "dispatcher-b");
    REQUIRE_OK(first);
    CHECK((*first)->request.revision == "1");                                  // oldest first
    REQUIRE_OK(store->finish((*first)->id, ci::store::RequestState::Pending)); // worker lost
    auto again = store->claim({"tests"}, "dispatcher-c");
    CHECK((*again)->id == (*first)->id);
    REQUIRE_OK(store->finish((*again)->id, ci::store::RequestState::Completed));
    CHECK(store->finish((*again)->id, ci::store::RequestState::Completed).error().code ==
          ci::ErrorCode::NotFound);

    auto last = store->requests(ci::store::RequestState::Pending);
    REQUIRE(last->size() == 1);
    CHECK(*store->cancel((*last)[0].id));
    CHECK_FALSE(*store->cancel((*last)[0].id));
    CHECK(store->requests(ci::store::RequestState::Cancelled)->size() == 1);
    CHECK(store->requests(ci::store::RequestState::Completed)->size() == 1);
}

TEST_CASE("store: each request is claimed by exactly one of several connections") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    {
        auto store = open(path);
        ci::store::Batch batch;
        for (int i = 0; i < 200; ++i) {
            batch.actions.emplace_back(
                request_for(i % 2 == 1 ? "tests" : "docs", std::to_string(i)));
        }
        REQUIRE_OK(store->write({batch}, t0));
    }
    std::mutex mutex;
    std::vector<std::int64_t> claimed;
    std::atomic<int> errors{0};
    std::vector<std::thread> dispatchers;
    dispatchers.reserve(4);
    for (int d = 0; d < 4; ++d) {
        dispatchers.emplace_back([&, d] {
            auto store = ci::store::open_sqlite(path);
            if (!store) {
                ++errors;
                return;
            }
            for (;;) {
                auto request = (*store)->claim({"tests", "docs"}, "d" + std::to_string(d));
                if (!request) {
                    ++errors;
                    return;
                }
                if (!request->has_value()) {
                    return;
                }
                const std::lock_guard lock(mutex);
                claimed.push_back((**request).id);
            }
        });
    }
    for (auto& thread : dispatchers) {
        thread.join();
    }
    CHECK(errors == 0);
    CHECK(claimed.size() == 200);
    CHECK(std::set<std::int64_t>(claimed.begin(), claimed.end()).size() == 200);
}

TEST_CASE("store: files it cannot use give clear errors and are left alone") {
    ci::test::TempDir dir;
    SUBCASE("a database from a newer libci") {
        const auto path = dir / "newer.sqlite";
        { open(path); }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
        auto refused = ci::store::open_sqlite(path);
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().code == ci::ErrorCode::Store);
        CHECK(refused.error().message.find("schema version 99 is newer than this libci's " +
                                           std::to_string(ci::store::schema_version)) !=
              std::string::npos);
    }
    SUBCASE("a file that is not a database") {
        const auto path = ci::test::write_file(dir / "corrupt.sqlite",
                                               std::string(8192, 'x') + "not sqlite at all");
        auto refused = ci::store::open_sqlite(path);
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().message.find("corrupt.sqlite") != std::string::npos);
        CHECK(refused.error().message.find("not a database") != std::string::npos);
        CHECK(ci::test::read_file(path).starts_with("xxxx"));
    }
    SUBCASE("a database another connection has locked") {
        const auto path = dir / "locked.sqlite";
        { open(path); }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
        ci::store::SqliteOptions options;
        options.busy_timeout = 100ms;
        auto store = ci::store::open_sqlite(path, options);
        if (store) {
            auto written =
                (*store)->write({ci::store::Batch{{}, {request_for("tests", "x")}, {}}}, t0);
            REQUIRE_FALSE(written.has_value());
            CHECK(written.error().message.find("locked") != std::string::npos);
        } else {
            CHECK(store.error().message.find("locked") != std::string::npos);
        }
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite3_close(db);
    }
    SUBCASE("a database it may not write") {
        const auto path = dir / "state-ro.sqlite";
        { open(path); }
        ::chmod(dir.path().c_str(), 0755);
        ::chmod(path.c_str(), 0444);
        const std::string said = as_unprivileged([&] {
            auto store = ci::store::open_sqlite(path);
            if (!store) {
                return store.error().message;
            }
            auto written = (*store)->write({ci::store::Batch{{}, {request_for("t", "x")}, {}}}, t0);
            return written ? std::string("written") : written.error().message;
        });
        INFO(said);
        CHECK(said.find("state-ro.sqlite") != std::string::npos);
        CHECK(said.find("attempt to write a readonly database") != std::string::npos);
        CHECK(said != "written");
    }
}

namespace {

/// Runs `sql` on the database at `path` through a connection of its own.
// SQL that takes the steps table back to before schema 8 and drops the log files of schema 9 and
// the worker keys of schema 11 (for the migration tests).
const std::string without_schema_8_steps =
    "ALTER TABLE steps DROP COLUMN description; ALTER TABLE steps DROP COLUMN tests; "
    "ALTER TABLE steps DROP COLUMN properties; DROP TABLE logfile_chunks; "
    "DROP TABLE worker_keys; ";

void execute_sql(const std::filesystem::path& path, const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* message = nullptr;
    const int code = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    INFO((message != nullptr ? message : ""));
    sqlite3_free(message);
    sqlite3_close(db);
    REQUIRE(code == SQLITE_OK);
}

/// One repository, a branch scheduler with this tree-stable timer, and a force scheduler.
ci::config::Config ingest_config(const std::string& tree_stable_timer) {
    auto checked = ci::config::parse_config(R"(
slaves: {local: {local: true}}
repositories: {app: {url: /srv/app.git}}
builders: {tests: {repository: app, workers: [local], steps: [{name: t, run: "true"}]}}
schedulers:
  main: {type: branch, repository: app, builders: [tests], branches: ["*"],
         tree_stable_timer: )" + tree_stable_timer +
                                                R"(}
  force: {type: force, builders: [tests]}
)",
                                            "t.yml");
    REQUIRE(checked.ok());
    return *checked.config;
}

} // namespace

TEST_CASE("ingest: events are acknowledged once on disk; waits end on their deadline") {
    ci::test::TempDir dir;
    const auto config = ingest_config("0s");
    auto store = open(dir / "state.sqlite");
    ci::ManualClock clock(t0);
    auto ingestor = ci::store::Ingestor::start(config, *store, clock);
    REQUIRE_OK(ingestor);

    std::vector<std::future<ci::Result<ci::store::Receipt>>> futures;
    for (int i = 0; i < 100; ++i) {
        ci::sched::Change change;
        change.repository = "app";
        change.branch = "b" + std::to_string(i % 10);
        change.revision = "r" + std::to_string(i);
        futures.push_back((*ingestor)->submit(ci::sched::Push{{change}}));
    }
    std::set<std::int64_t> ids;
    for (auto& future : futures) {
        auto receipt = future.get();
        REQUIRE_OK(receipt);
        REQUIRE(receipt->change_ids.size() == 1);
        ids.insert(receipt->change_ids[0]);
    }
    CHECK(ids.size() == 100);
    // A zero timer: every push ended its wait at once and queued a build.
    CHECK(store->requests(ci::store::RequestState::Pending)->size() >= 10);
    CHECK((*store->change(*ids.begin()))->revision.starts_with("r"));

    ci::sched::ForceRequest bad;
    bad.builders = {"nope"};
    auto refused = (*ingestor)->submit(bad).get();
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
}

TEST_CASE("ingest: enqueue() and flush() write on the caller's thread; the writer thread still "
          "ends the waits they start") {
    ci::test::TempDir dir;
    const auto config = ingest_config("1s");
    auto store = open(dir / "state.sqlite");
    ci::SystemClock clock;
    std::atomic<int> requests_seen{0};
    ci::store::IngestOptions options;
    options.on_requests = [&](const std::vector<ci::store::BuildRequest>& requests) {
        requests_seen += static_cast<int>(requests.size());
    };
    auto ingestor = ci::store::Ingestor::start(config, *store, clock, options);
    REQUIRE_OK(ingestor);

    const auto push = [](const std::string& branch, const std::string& revision) {
        ci::sched::Change change;
        change.repository = "app";
        change.branch = branch;
        change.revision = revision;
        return ci::sched::Event{ci::sched::Push{{change}}};
    };
    std::vector<std::thread::id> done_on;
    std::vector<std::int64_t> ids;
    const auto done = [&](ci::Result<ci::store::Receipt> receipt) {
        REQUIRE_OK(receipt);
        done_on.push_back(std::this_thread::get_id());
        ids.push_back(receipt->change_ids.at(0));
    };
    // The first event of a round owes a flush, the others do not.
    CHECK((*ingestor)->enqueue(push("a", "r1"), "delivery-1", done));
    CHECK_FALSE((*ingestor)->enqueue(push("b", "r2"), "delivery-2", done));
    CHECK_FALSE((*ingestor)->enqueue(push("c", "r3"), {}, done));
    CHECK(done_on.empty()); // nothing is written before the flush
    (*ingestor)->flush();
    REQUIRE(done_on.size() == 3);
    for (const auto& id : done_on) {
        CHECK(id == std::this_thread::get_id());
    }
    CHECK(ids == std::vector<std::int64_t>{1, 2, 3});
    CHECK(*store->deliveries_since(clock.now() - 1h) ==
          std::vector<std::string>{"delivery-1", "delivery-2"});
    CHECK(store->scheduler_state()->waits.size() == 3);
    // After a flush, the next event owes one again.
    CHECK((*ingestor)->enqueue(push("a", "r4"), {}, done));
    (*ingestor)->flush();
    CHECK(done_on.size() == 4);

    // The writer thread slept without a deadline; the flushes gave it one (1 s), and it ends
    // the waits then, with nobody calling flush() again: one build for each of a (its wait
    // restarted by r4), b and c.
    for (int i = 0; i < 200 && requests_seen < 3; ++i) {
        std::this_thread::sleep_for(50ms);
    }
    CHECK(requests_seen == 3);
    CHECK(store->requests(ci::store::RequestState::Pending)->size() == 3);
    CHECK(store->scheduler_state()->waits.empty());
}

TEST_CASE("ingest: waits restored at start end at their deadlines with no other event") {
    // A master killed inside a tree-stable window: its waits are on disk, and the next start
    // must end them when they are due, not when the next event happens to arrive.
    ci::test::TempDir dir;
    const auto config = ingest_config("1s");
    auto store = open(dir / "state.sqlite");
    ci::SystemClock clock;
    {
        auto first = ci::store::Ingestor::start(config, *store, clock);
        REQUIRE_OK(first);
        for (const auto* branch : {"a", "b", "c"}) {
            ci::sched::Change change;
            change.repository = "app";
            change.branch = branch;
            change.revision = std::string("r-") + branch;
            REQUIRE_OK((*first)->submit(ci::sched::Push{{change}}).get());
        }
    } // stopped before the waits are due
    REQUIRE(store->scheduler_state()->waits.size() == 3);
    REQUIRE(store->requests(ci::store::RequestState::Pending)->empty());

    std::atomic<int> requests_seen{0};
    ci::store::IngestOptions options;
    options.on_requests = [&](const std::vector<ci::store::BuildRequest>& requests) {
        requests_seen += static_cast<int>(requests.size());
    };
    auto second = ci::store::Ingestor::start(config, *store, clock, options);
    REQUIRE_OK(second);
    for (int i = 0; i < 200 && requests_seen < 3; ++i) {
        std::this_thread::sleep_for(50ms);
    }
    CHECK(requests_seen == 3);
    CHECK(store->requests(ci::store::RequestState::Pending)->size() == 3);
    CHECK(store->scheduler_state()->waits.empty());
}

TEST_CASE("ingest: a failing disk backs the writer's retries off instead of a hot loop, and "
          "the waits end once it works again") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    const auto config = ingest_config("1s");
    ci::store::SqliteOptions sqlite_options;
    sqlite_options.busy_timeout = 1ms; // a locked database fails a write at once
    auto opened = ci::store::open_sqlite(path, sqlite_options);
    REQUIRE_OK(opened);
    auto& store = **opened;
    ci::SystemClock clock;
    std::mutex mutex;
    int failures = 0;
    int successes_after_failure = 0;
    ci::store::IngestOptions options;
    options.first_retry = 100ms;
    options.on_commit = [&](const ci::Status& status) {
        const std::lock_guard guard(mutex);
        if (!status) {
            ++failures;
        } else if (failures > 0) {
            ++successes_after_failure;
        }
    };
    auto ingestor = ci::store::Ingestor::start(config, store, clock, options);
    REQUIRE_OK(ingestor);
    ci::sched::Change change;
    change.repository = "app";
    change.branch = "b";
    change.revision = "r";
    REQUIRE_OK((*ingestor)->submit(ci::sched::Push{{change}}).get());

    // Another connection holds the write lock past the wait's deadline: every tick fails.
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
    REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    std::this_thread::sleep_for(2500ms);
    int failed_while_locked = 0;
    {
        const std::lock_guard guard(mutex);
        failed_while_locked = failures;
    }
    (void)sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    // 100, 200, 400, 800 ms...: a handful of attempts in 1.5 s of failures, not thousands.
    CHECK(failed_while_locked >= 1);
    CHECK(failed_while_locked <= 6);
    // on_commit runs on the writer's thread after the commit, which a reader may see first: wait
    // for both (the ASan run once read the request before the callback had counted it).
    const auto committed_since = [&] {
        const std::lock_guard guard(mutex);
        return successes_after_failure;
    };
    for (int i = 0; i < 200 && (store.requests(ci::store::RequestState::Pending)->empty() ||
                                committed_since() == 0);
         ++i) {
        std::this_thread::sleep_for(50ms);
    }
    CHECK(store.requests(ci::store::RequestState::Pending)->size() == 1);
    CHECK(committed_since() >= 1);
}

TEST_CASE("store: builds, steps, compressed logs, workers and latent instances") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    std::int64_t build_id = 0;
    std::string log_text;
    {
        auto store = open(path);
        REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "abc")}, {}}}, t0));
        auto request = store->claim({"tests"}, "master");
        REQUIRE_OK(request);
        auto started = store->start_build((*request)->id, "tests", "local/0", t0);
        REQUIRE_OK(started);
        build_id = *started;

        ci::store::Step step{
            build_id, 0, "checkout", t0, std::nullopt, std::nullopt, std::nullopt, {}, {}, {}};
        REQUIRE_OK(store->save_step(step));
        step.finished = t0 + 3s;
        step.result = ci::BuildResult::Success;
        step.exit_code = 0;
        REQUIRE_OK(store->save_step(step)); // an update, not a second step
        REQUIRE_OK(store->save_step(
            {build_id, 1, "test", t0 + 3s, std::nullopt, std::nullopt, {}, {}, {}, {}}));
        // What a step says of itself: how it ended, its tests, the properties it set.
        REQUIRE_OK(store->save_step({build_id,
                                     2,
                                     "junit",
                                     t0 + 3s,
                                     t0 + 4s,
                                     ci::BuildResult::Failure,
                                     1,
                                     "no output for 20m: stopped after 20m",
                                     ci::build::TestResults{5, 1, 2, 0, {"pkg.T.test_x"}},
                                     {{"version", "1.2.3"}}}));

        // Chunks arrive in order, one twice (a worker that reconnected).
        for (int i = 0; i < 50; ++i) {
            const std::string line =
                "line " + std::to_string(i) + " " + std::string(100, '.') + "\n";
            log_text += line;
            REQUIRE_OK(store->append_log(build_id, 1, i, line));
        }
        REQUIRE_OK(store->append_log(build_id, 1, 7, "a duplicate that must not appear\n"));

        ci::store::Build finished = **store->build(build_id);
        finished.finished = t0 + 60s;
        finished.result = ci::BuildResult::Failure;
        finished.branch_tip = "b1";
        finished.target_tip = "t1";
        finished.merge_commit = "m1";
        REQUIRE_OK(store->update_build(finished));
        ci::store::Build missing;
        missing.id = 999;
        CHECK(store->update_build(missing).error().code == ci::ErrorCode::NotFound);

        REQUIRE_OK(store->save_worker({"local/0", "local", "idle", t0}));
        REQUIRE_OK(store->save_instance({"i-1",
                                         "aws/centos-7",
                                         "tok-1",
                                         "running",
                                         t0,
                                         {},
                                         "aws/centos-7/a",
                                         "c3.large",
                                         "spot"}));
        REQUIRE_OK(store->save_instance({"i-2",
                                         "aws/centos-7",
                                         "tok-2",
                                         "terminated",
                                         t0,
                                         t0,
                                         "aws/centos-7/b",
                                         "c3.large",
                                         "spot"}));
        // An intent (no instance id yet) beside another: keyed by the launch's token.
        REQUIRE_OK(store->save_instance(
            {"", "aws", "tok-3", "launching", t0 + 1s, {}, "aws/w3", "c5.large", "spot"}));
        REQUIRE_OK(store->save_instance(
            {"", "aws", "tok-4", "launching", t0 + 2s, {}, "aws/w4", "c5.large", "on-demand"}));
        // Its id once RunInstances answered: the same row.
        REQUIRE_OK(store->save_instance(
            {"i-4", "aws", "tok-4", "pending", t0 + 2s, {}, "aws/w4", "c5.large", "on-demand"}));
    }
    auto store = open(path);
    auto build = store->build(build_id);
    REQUIRE_OK(build);
    REQUIRE(build->has_value());
    CHECK((*build)->worker == "local/0");
    CHECK((*build)->result == ci::BuildResult::Failure);
    CHECK((*build)->finished == t0 + 60s);
    CHECK((*build)->merge_commit == "m1");
    auto steps = store->steps(build_id);
    REQUIRE_OK(steps);
    REQUIRE(steps->size() == 3);
    CHECK((*steps)[0].exit_code == 0);
    CHECK((*steps)[0].finished == t0 + 3s);
    CHECK_FALSE((*steps)[1].exit_code.has_value());
    CHECK((*steps)[1].description.empty());
    CHECK_FALSE((*steps)[1].tests.has_value());
    CHECK((*steps)[1].properties.empty());
    CHECK((*steps)[2].description == "no output for 20m: stopped after 20m");
    CHECK((*steps)[2].tests == ci::build::TestResults{5, 1, 2, 0, {"pkg.T.test_x"}});
    CHECK((*steps)[2].properties == std::map<std::string, std::string>{{"version", "1.2.3"}});

    auto log = store->log(build_id, 1);
    REQUIRE_OK(log);
    CHECK(*log == log_text);

    // Log files: by step and name, in order, a chunk sent twice stored once.
    REQUIRE_OK(store->append_logfile(build_id, 2, "test.log", 1, "second\n"));
    REQUIRE_OK(store->append_logfile(build_id, 2, "test.log", 0, "first\n"));
    REQUIRE_OK(store->append_logfile(build_id, 2, "test.log", 1, "again\n"));
    REQUIRE_OK(store->append_logfile(build_id, 2, "a.log", 0, ""));
    CHECK(store->logfile(build_id, 2, "test.log")->value_or("") == "first\nsecond\n");
    CHECK(store->logfile(build_id, 2, "a.log")->value_or("x").empty());
    CHECK_FALSE(store->logfile(build_id, 2, "nope")->has_value());
    CHECK_FALSE(store->logfile(build_id, 1, "test.log")->has_value());
    CHECK(*store->logfile_names(build_id) ==
          std::map<int, std::vector<std::string>>{{2, {"a.log", "test.log"}}});
    CHECK(store->logfile_names(build_id + 100)->empty());
    auto tail = store->log(build_id, 1, 48);
    REQUIRE_OK(tail);
    CHECK(tail->starts_with("line 48 "));
    CHECK(store->log(build_id, 5)->empty());
    // A range [from, to): what a follower reads from disk before the chunks still in memory.
    auto middle = store->log(build_id, 1, 2, 4);
    REQUIRE_OK(middle);
    CHECK(*middle ==
          "line 2 " + std::string(100, '.') + "\nline 3 " + std::string(100, '.') + "\n");
    CHECK(store->log(build_id, 1, 0, 0)->empty());
    // Pages of whole chunks (each chunk 108 bytes or so): at least max_bytes, one chunk more at
    // most; read one after the other, they are the log.
    std::string paged;
    std::int64_t next = 0;
    int pages = 0;
    for (bool more = true; more; ++pages) {
        auto page = store->log_page(build_id, 1, next, 50, 1000);
        REQUIRE_OK(page);
        CHECK(page->text.size() < 1000 + 120);
        more = page->more;
        CHECK(page->next > next);
        next = page->next;
        paged += page->text;
    }
    CHECK(paged == log_text);
    CHECK(pages == 5); // 10 chunks of ~108 bytes a page, 50 chunks
    auto last = store->log_page(build_id, 1, 48, 49, 1);
    REQUIRE_OK(last);
    CHECK(last->text.starts_with("line 48 "));
    CHECK_FALSE(last->more);
    CHECK(last->next == 49);
    auto none = store->log_page(build_id, 5, 0, 100, 1000);
    REQUIRE_OK(none);
    CHECK(none->text.empty());
    CHECK_FALSE(none->more);

    CHECK(*store->workers() ==
          std::vector<ci::store::WorkerRecord>{{"local/0", "local", "idle", t0}});
    auto live = store->live_instances();
    REQUIRE_OK(live);
    REQUIRE(live->size() == 3);
    CHECK((*live)[0].instance_id == "i-1");
    CHECK((*live)[0].client_token == "tok-1");
    CHECK((*live)[1] ==
          ci::store::LatentInstance{
              "", "aws", "tok-3", "launching", t0 + 1s, {}, "aws/w3", "c5.large", "spot"});
    CHECK((*live)[2].instance_id == "i-4");
    CHECK((*live)[2].state == "pending");
}

TEST_CASE("store: worker keys are saved, replaced, deleted, and added by migration 11") {
    ci::test::TempDir dir;
    const auto path = dir / "v10.sqlite";
    { open(path); }
    execute_sql(path, "DROP TABLE worker_keys; PRAGMA user_version=10");
    auto store = open(path);
    CHECK(store->worker_keys()->empty());
    const ci::store::WorkerKey fresh{"aws/a", "aws", std::string(64, 'a'), "", t0 + 1s};
    REQUIRE_OK(store->save_worker_key(fresh));
    REQUIRE_OK(store->save_worker_key({"aws/b", "aws", std::string(64, 'b'), "", {}}));
    CHECK(*store->worker_keys() ==
          std::vector<ci::store::WorkerKey>{fresh, {"aws/b", "aws", std::string(64, 'b'), "", {}}});
    // A rotation replaces the row: the token's expiry goes, the key before is kept.
    const ci::store::WorkerKey rotated{
        "aws/a", "aws", std::string(64, 'c'), std::string(64, 'a'), {}};
    REQUIRE_OK(store->save_worker_key(rotated));
    REQUIRE_OK(store->delete_worker_key("aws/b"));
    REQUIRE_OK(store->delete_worker_key("aws/none"));
    CHECK(*store->worker_keys() == std::vector<ci::store::WorkerKey>{rotated});
}

TEST_CASE("store: schema 9's latent instances are kept by the migration to schema 10") {
    ci::test::TempDir dir;
    const auto path = dir / "v9.sqlite";
    { open(path); }
    execute_sql(path,
                "DROP TABLE latent_instances; CREATE TABLE latent_instances (instance_id TEXT "
                "PRIMARY KEY, class TEXT NOT NULL, client_token TEXT NOT NULL, state TEXT NOT "
                "NULL, launched_ms INTEGER NOT NULL, terminated_ms INTEGER); INSERT INTO "
                "latent_instances VALUES ('i-9', 'aws', 'tok-9', 'running', 1000, NULL); "
                "DROP TABLE worker_keys; PRAGMA user_version=9");
    auto store = open(path);
    auto live = store->live_instances();
    REQUIRE_OK(live);
    REQUIRE(live->size() == 1);
    CHECK((*live)[0].instance_id == "i-9");
    CHECK((*live)[0].client_token == "tok-9");
    CHECK((*live)[0].state == "running");
    CHECK((*live)[0].market == "on-demand");
    CHECK((*live)[0].worker.empty());
}

TEST_CASE("store: a result that names no build result is an error, not a default") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    std::int64_t build_id = 0;
    {
        auto store = open(path);
        REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "abc")}, {}}}, t0));
        auto request = store->claim({"tests"}, "master");
        REQUIRE_OK(request);
        build_id = *store->start_build((*request)->id, "tests", "local/0", t0);
        REQUIRE_OK(store->save_step(
            {build_id, 0, "checkout", t0, t0, ci::BuildResult::Success, 0, {}, {}, {}}));
        CHECK((*store->build(build_id))->result == std::nullopt); // running
    }
    execute_sql(path, "UPDATE builds SET finished_ms = 1, result = 'sucess'");
    execute_sql(path, "UPDATE steps SET result = 'green'");
    auto store = open(path);
    auto build = store->build(build_id);
    REQUIRE_FALSE(build.has_value());
    CHECK(build.error().code == ci::ErrorCode::Store);
    CHECK(build.error().message.find("\"sucess\" is not a build result") != std::string::npos);
    CHECK(build.error().message.find("build " + std::to_string(build_id)) != std::string::npos);
    auto steps = store->steps(build_id);
    REQUIRE_FALSE(steps.has_value());
    CHECK(steps.error().message.find("\"green\"") != std::string::npos);
}

TEST_CASE("store: collapsible requests of a builder and branch merge into the newest") {
    ci::test::TempDir dir;
    auto store = open(dir / "state.sqlite");
    auto first = request_for("tests", "r1", true);
    first.change_ids = {1};
    auto second = request_for("tests", "r2", true);
    second.change_ids = {2, 3};
    auto third = request_for("tests", "r3", true);
    third.change_ids = {4};
    auto other_branch = request_for("tests", "x1", true);
    other_branch.branch = "release/1";
    auto not_collapsible = request_for("tests", "r0", false);
    REQUIRE_OK(store->write(
        {ci::store::Batch{{}, {not_collapsible, first, second, other_branch, third}, {}}}, t0));

    auto plain = store->claim({"tests"}, "d");
    REQUIRE_OK(plain);
    CHECK((*plain)->request.revision == "r0"); // not collapsible: claimed alone

    auto merged = store->claim({"tests"}, "d");
    REQUIRE_OK(merged);
    CHECK((*merged)->request.revision == "r3"); // the newest builds
    CHECK((*merged)->request.change_ids == std::vector<std::int64_t>{1, 2, 3, 4});
    auto collapsed = store->requests(ci::store::RequestState::Collapsed);
    REQUIRE_OK(collapsed);
    REQUIRE(collapsed->size() == 2);
    CHECK((*collapsed)[0].collapsed_into == (*merged)->id);

    auto release = store->claim({"tests"}, "d");
    REQUIRE_OK(release);
    CHECK((*release)->request.branch == "release/1");
    CHECK_FALSE(store->claim({"tests"}, "d")->has_value());
}

TEST_CASE("store: an older schema is migrated when opened") {
    ci::test::TempDir dir;
    const auto path = dir / "old.sqlite";
    { open(path); }
    // Back to schema 1: what migrations 2 to 7 add is gone (waits keep their columns).
    execute_sql(path,
                std::string(undo_schema_7) +
                    "ALTER TABLE build_requests DROP COLUMN collapsed_into; "
                    "DROP TABLE webhook_deliveries; DROP INDEX builds_by_builder; "
                    "DROP INDEX builds_by_request; DROP TABLE polled_refs; DROP TABLE reports; " +
                    without_schema_8_steps + "PRAGMA user_version=1");
    auto store = open(path);
    REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "a", true)}, {}}}, t0));
    auto claimed = store->claim({"tests"}, "d");
    REQUIRE_OK(claimed);
    CHECK((*claimed)->request.revision == "a");
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, nullptr);
    REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
    CHECK(sqlite3_column_int(statement, 0) == ci::store::schema_version);
    sqlite3_finalize(statement);
    sqlite3_close(db);
}

TEST_CASE("store: schema 7's steps are kept by the migration to schema 8") {
    ci::test::TempDir dir;
    const auto path = dir / "v7.sqlite";
    { open(path); }
    execute_sql(path,
                without_schema_8_steps +
                    "INSERT INTO steps VALUES (5, 1, 'old step', 0, 1000, 'failure', 2); "
                    "PRAGMA user_version=7");
    auto store = open(path);
    auto steps = store->steps(5);
    REQUIRE_OK(steps);
    REQUIRE(steps->size() == 1);
    CHECK((*steps)[0].name == "old step");
    CHECK((*steps)[0].result == ci::BuildResult::Failure);
    CHECK((*steps)[0].exit_code == 2);
    CHECK((*steps)[0].description.empty());
    CHECK_FALSE((*steps)[0].tests.has_value());
    CHECK((*steps)[0].properties.empty());
}

TEST_CASE("store: schema 3's waits and deliveries are kept by the migration to schema 4") {
    ci::test::TempDir dir;
    const auto path = dir / "v3.sqlite";
    { open(path); }
    // Schema 3's two tables, as it made them, with rows in them (and no table of schema 5).
    execute_sql(
        path,
        std::string(undo_schema_7) +
            "DROP TABLE reports; DROP TABLE polled_refs; DROP TABLE waits; DROP TABLE "
            "webhook_deliveries; "
            "CREATE TABLE waits (scheduler TEXT NOT NULL, repository TEXT NOT NULL, "
            "branch TEXT NOT NULL, is_tag INTEGER NOT NULL, started_ms INTEGER NOT NULL, "
            "deadline_ms INTEGER NOT NULL, revision TEXT NOT NULL, change_ids TEXT NOT NULL, "
            "PRIMARY KEY (scheduler, repository, branch)); "
            "CREATE TABLE deliveries (id TEXT PRIMARY KEY, received_ms INTEGER NOT NULL); "
            "CREATE INDEX deliveries_by_time ON deliveries (received_ms); "
            "INSERT INTO waits VALUES ('main', 'app', 'feature', 0, 1000, 6000, 'abc', '7,8'); "
            "INSERT INTO deliveries VALUES ('newer', 3000), ('older', 2000); " +
            without_schema_8_steps + "PRAGMA user_version=3");
    auto store = open(path);
    auto state = store->scheduler_state();
    REQUIRE_OK(state);
    REQUIRE(state->waits.size() == 1);
    CHECK(state->waits[0].branch == "feature");
    CHECK(state->waits[0].change_ids == std::vector<std::int64_t>{7, 8});
    const auto epoch = ci::WallTime{};
    CHECK(*store->deliveries_since(epoch) == std::vector<std::string>{"older", "newer"});
    CHECK(*store->deliveries_since(epoch + 2500ms) == std::vector<std::string>{"newer"});
    // A wait saved again replaces the migrated one (same key).
    ci::sched::Wait wait{"main", "app", "feature", false, t0, t0 + 5s, "def", {9}};
    REQUIRE_OK(store->write({ci::store::Batch{{}, {ci::sched::SaveWait{wait}}, {}}}, t0));
    state = store->scheduler_state();
    REQUIRE(state->waits.size() == 1);
    CHECK(state->waits[0].revision == "def");
    // Change ids go on from the changes stored (none here) and the old counter.
    CHECK(*store->reserve_change_ids(1) == std::vector<std::int64_t>{1});
}

TEST_CASE("store: schema 4 gains the poller's refs; saved refs survive a reopen") {
    ci::test::TempDir dir;
    const auto path = dir / "v4.sqlite";
    {
        auto store = open(path);
        REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "a")}, {}}}, t0));
    }
    // Back to schema 4, a request queued.
    execute_sql(path,
                std::string(undo_schema_7) + "DROP TABLE reports; DROP TABLE polled_refs; " +
                    without_schema_8_steps + "PRAGMA user_version=4");
    const ci::store::PolledRefs refs{
        "/srv/git/app.git",
        {{"refs/heads/master", std::string(40, 'a')}, {"refs/tags/1.0", std::string(40, 'b')}},
        t0};
    {
        auto store = open(path);
        CHECK(store->requests(ci::store::RequestState::Pending)->size() == 1); // kept
        auto none = store->polled_refs("app");
        REQUIRE_OK(none);
        CHECK_FALSE(none->has_value()); // never polled
        REQUIRE_OK(store->save_polled_refs("app", refs));
        // An empty reading is a baseline too (a repository with no branches yet).
        REQUIRE_OK(store->save_polled_refs("empty", {"/srv/git/empty.git", {}, t0 + 1s}));
    }
    auto store = open(path);
    auto read = store->polled_refs("app");
    REQUIRE_OK(read);
    REQUIRE(read->has_value());
    CHECK(**read == refs);
    auto empty = store->polled_refs("empty");
    REQUIRE_OK(empty);
    REQUIRE(empty->has_value());
    CHECK((*empty)->refs.empty());
    CHECK((*empty)->polled == t0 + 1s);
    // Saved again: replaced, not added to.
    const ci::store::PolledRefs moved{
        "/srv/git/app.git", {{"refs/heads/master", std::string(40, 'c')}}, t0 + 2s};
    REQUIRE_OK(store->save_polled_refs("app", moved));
    CHECK(**store->polled_refs("app") == moved);

    // Damaged refs are an error, never an empty baseline against which every ref looks new.
    execute_sql(path, "UPDATE polled_refs SET refs = 'not json' WHERE repository = 'app'");
    auto damaged = store->polled_refs("app");
    REQUIRE_FALSE(damaged.has_value());
    CHECK(damaged.error().code == ci::ErrorCode::Store);
    CHECK(damaged.error().message.find("read the polled refs of app") != std::string::npos);
}

TEST_CASE("store: schema 5 gains the reporters' outbox; queued messages survive a reopen") {
    ci::test::TempDir dir;
    const auto path = dir / "v5.sqlite";
    {
        auto store = open(path);
        REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "a")}, {}}}, t0));
    }
    execute_sql(path,
                std::string(undo_schema_7) + "DROP TABLE reports; " + without_schema_8_steps +
                    "PRAGMA user_version=5");
    std::vector<std::int64_t> ids;
    {
        auto store = open(path);
        CHECK(store->requests(ci::store::RequestState::Pending)->size() == 1); // kept
        CHECK(store->queued_reports("github")->empty());
        auto queued = store->queue_reports("github", {"one", "two", "three"}, t0);
        REQUIRE_OK(queued);
        ids = *queued;
        REQUIRE(ids.size() == 3);
        CHECK(ids[0] < ids[1]);
        CHECK(ids[1] < ids[2]);
        REQUIRE_OK(store->queue_reports("zulip", {"other"}, t0 + 1s));
        REQUIRE_OK(store->finish_report(ids[0], ci::store::ReportState::Sent, t0 + 2s));
    }
    // Reopened (a restart): what was sent is not sent again; the rest is, in order.
    auto store = open(path);
    auto left = store->queued_reports("github");
    REQUIRE_OK(left);
    REQUIRE(left->size() == 2);
    CHECK((*left)[0] == ci::store::QueuedReport{ids[1], "github", "two", t0});
    CHECK((*left)[1].payload == "three");
    REQUIRE_OK(store->finish_report(ids[1], ci::store::ReportState::Dropped, t0 + 3s));
    CHECK(store->queued_reports("github")->size() == 1);
    CHECK(store->queued_reports("zulip")->size() == 1);
    // An empty batch is no error.
    CHECK(store->queue_reports("github", {}, t0)->empty());
}

TEST_CASE("store: an event's outbox messages are stored by its own transaction, or not at all") {
    ci::test::TempDir dir;
    auto store = open(dir / "state.sqlite");
    using ci::store::OutboxMessage;
    const auto payloads = [&](std::int64_t after = 0) {
        std::vector<std::string> out;
        const auto rows = store->queued_reports("r", after);
        REQUIRE_OK(rows);
        for (const auto& row : *rows) {
            out.push_back(row.payload);
        }
        return out;
    };
    // A request queued: its messages know its id.
    const ci::store::RequestReports per_request = [](const ci::store::BuildRequest& request) {
        return std::vector<OutboxMessage>{
            {"r", "requested " + std::to_string(request.id) + " " + request.request.builder, t0}};
    };
    const auto change = feature_change(1, "abc");
    REQUIRE_OK(store->write(
        {ci::store::Batch{{change}, {request_for("tests", "a"), request_for("docs", "a")}, {}}},
        t0,
        per_request));
    CHECK(payloads() == std::vector<std::string>{"requested 1 tests", "requested 2 docs"});
    // A write that fails (change 1 again) stores no request and none of their messages.
    CHECK_FALSE(
        store->write({ci::store::Batch{{change}, {request_for("lint", "a")}, {}}}, t0, per_request)
            .has_value());
    CHECK(payloads().size() == 2);
    CHECK(store->requests(ci::store::RequestState::Pending)->size() == 2);

    // A build started: its messages know its id.
    auto claimed = store->claim({"tests"}, "master");
    REQUIRE_OK(claimed);
    REQUIRE(*claimed);
    auto build = store->start_build(1, "tests", "local/0", t0, [](std::int64_t id) {
        return std::vector<OutboxMessage>{{"r", "started " + std::to_string(id), t0}};
    });
    REQUIRE_OK(build);
    const auto last = store->queued_reports("r")->back().id;
    CHECK(payloads().back() == "started " + std::to_string(*build));

    // Its checkout, then its end with its request's: one transaction each.
    auto record = **store->build(*build);
    record.branch_tip = "abc";
    REQUIRE_OK(store->update_build(record, {{"r", "checked out", t0}}));
    record.finished = t0 + 1s;
    record.result = ci::BuildResult::Success;
    REQUIRE_OK(
        store->end_build(record, ci::store::RequestState::Completed, {{"r", "ended", t0 + 1s}}));
    CHECK(store->request(1)->value().state == ci::store::RequestState::Completed);
    CHECK(payloads(last) == std::vector<std::string>{"checked out", "ended"});
    // An end whose request is not claimed any more changes nothing, stores nothing.
    auto again = record;
    again.finished = t0 + 9s;
    CHECK_FALSE(
        store->end_build(again, ci::store::RequestState::Completed, {{"r", "ended twice", t0}}));
    CHECK(store->build(*build)->value().finished == t0 + 1s);
    CHECK(payloads(last).size() == 2);

    // A cancel: with its messages when it cancels, without when the request was not pending.
    CHECK(*store->cancel(2, {{"r", "cancelled 2", t0}}));
    CHECK(store->request(2)->value().state == ci::store::RequestState::Cancelled);
    CHECK_FALSE(*store->cancel(2, {{"r", "cancelled 2 again", t0}}));
    CHECK_FALSE(*store->cancel(1, {{"r", "cancelled 1", t0}}));
    CHECK(payloads(last) == std::vector<std::string>{"checked out", "ended", "cancelled 2"});

    // A reporter turning one message into others: the mark and the new ones together.
    const auto rows = *store->queued_reports("r");
    auto made = store->change_reports(
        {{"s", "made of the first", t0}}, {{rows[0].id, ci::store::ReportState::Sent}}, t0 + 2s);
    REQUIRE_OK(made);
    REQUIRE(made->size() == 1);
    CHECK(store->queued_reports("r")->size() == rows.size() - 1);
    CHECK(store->queued_reports("s")->front().id == made->front());
    CHECK(store->queued_reports("s")->front().queued == t0);
}

TEST_CASE("store: prune deletes old delivery ids and finished reports, never a queued one") {
    ci::test::TempDir dir;
    auto store = open(dir / "state.sqlite");
    const auto change_at = feature_change;
    REQUIRE_OK(store->write({ci::store::Batch{{change_at(1, "a")}, {}, {"old"}}}, t0));
    REQUIRE_OK(store->write({ci::store::Batch{{change_at(2, "b")}, {}, {"new"}}}, t0 + 10h));
    auto ids =
        store->queue_reports("github", {"sent-early", "dropped-early", "queued", "sent-late"}, t0);
    REQUIRE_OK(ids);
    REQUIRE_OK(store->finish_report((*ids)[0], ci::store::ReportState::Sent, t0 + 1h));
    REQUIRE_OK(store->finish_report((*ids)[1], ci::store::ReportState::Dropped, t0 + 1h));
    REQUIRE_OK(store->finish_report((*ids)[3], ci::store::ReportState::Sent, t0 + 10h));

    auto removed = store->prune(t0 + 5h);
    REQUIRE_OK(removed);
    CHECK(*removed == 3); // "old", sent-early, dropped-early
    CHECK(*store->deliveries_since(t0 - 1h) == std::vector<std::string>{"new"});
    const auto queued = store->queued_reports("github");
    REQUIRE(queued->size() == 1);
    CHECK((*queued)[0].payload == "queued");       // queued long ago, and still to be sent
    CHECK(store->recent_changes(10)->size() == 2); // changes are not history to prune
    CHECK(*store->prune(t0 + 5h) == 0);
}

TEST_CASE("store: change ids go on after the newest stored change, not after what was reserved") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    {
        auto store = open(path);
        auto ids = store->reserve_change_ids(3);
        REQUIRE_OK(ids);
        CHECK(*ids == std::vector<std::int64_t>{1, 2, 3});
        REQUIRE_OK(store->write({ci::store::Batch{{feature_change(2, "abc")}, {}, {}}}, t0));
        // Within one run, ids only increase.
        CHECK(*store->reserve_change_ids(1) == std::vector<std::int64_t>{4});
    }
    // 3 and 4 were never stored: after a restart the next id follows 2.
    auto store = open(path);
    CHECK(*store->reserve_change_ids(2) == std::vector<std::int64_t>{3, 4});
}

TEST_CASE("store: webhook deliveries are stored with their changes, or not at all") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    {
        auto store = open(path);
        ci::sched::Change change;
        change.id = 1;
        change.repository = "app";
        change.branch = "feature";
        change.revision = "abc";
        change.when = t0;
        REQUIRE_OK(store->write({ci::store::Batch{{change}, {}, {"delivery-1"}}}, t0));
        // A batch that fails (the same change id again) rolls its delivery back too.
        CHECK_FALSE(store->write({ci::store::Batch{{change}, {}, {"delivery-2"}}}, t0 + 1h));
    }
    auto store = open(path);
    auto seen = store->deliveries_since(t0 - 1h);
    REQUIRE_OK(seen);
    CHECK(*seen == std::vector<std::string>{"delivery-1"});
    CHECK(store->deliveries_since(t0 + 1s)->empty());
    auto changes = store->recent_changes(10);
    REQUIRE_OK(changes);
    REQUIRE(changes->size() == 1);
    CHECK((*changes)[0].revision == "abc");
}

TEST_CASE("store: builds are listed newest first; a restart ends unfinished ones as retry") {
    ci::test::TempDir dir;
    const auto path = dir / "state.sqlite";
    std::int64_t running_build = 0;
    std::int64_t done_build = 0;
    {
        auto store = open(path);
        REQUIRE_OK(store->write(
            {ci::store::Batch{
                {},
                {request_for("tests", "a"), request_for("tests", "b"), request_for("docs", "c")},
                {}}},
            t0));
        auto first = store->claim({"tests"}, "master");
        auto second = store->claim({"tests"}, "master");
        REQUIRE_OK(first);
        REQUIRE_OK(second);
        auto a = store->start_build((*first)->id, "tests", "w/0", t0);
        auto b = store->start_build((*second)->id, "tests", "w/1", t0 + 1s);
        REQUIRE_OK(a);
        REQUIRE_OK(b);
        done_build = *a;
        running_build = *b;
        auto finished = *store->build(done_build);
        finished->finished = t0 + 5s;
        finished->result = ci::BuildResult::Success;
        REQUIRE_OK(store->update_build(*finished));
        REQUIRE_OK(store->finish((*first)->id, ci::store::RequestState::Completed));
        // The master dies here: build b runs, its request is claimed.
    }
    auto store = open(path);
    ci::store::BuildQuery query;
    query.builder = "tests";
    auto listed = store->builds(query);
    REQUIRE_OK(listed);
    REQUIRE(listed->size() == 2);
    CHECK((*listed)[0].id == running_build);
    CHECK((*listed)[1].id == done_build);
    query.unfinished_only = true;
    CHECK(store->builds(query)->size() == 1);
    query.builder = "docs";
    CHECK(store->builds(query)->empty());

    auto ended = store->recover_unfinished(t0 + 1min);
    REQUIRE_OK(ended);
    CHECK(*ended == 1);
    auto lost = *store->build(running_build);
    CHECK(lost->result == ci::BuildResult::Retry);
    CHECK(lost->finished == std::optional(t0 + 1min));
    CHECK((*store->build(done_build))->result == ci::BuildResult::Success);
    // Its request is pending again, ahead of the one that never ran.
    auto pending = store->requests(ci::store::RequestState::Pending);
    REQUIRE_OK(pending);
    REQUIRE(pending->size() == 2);
    CHECK(pending->front().request.revision == "b");
    CHECK(pending->front().claimed_by.empty());
    CHECK(*store->recover_unfinished(t0 + 2min) == 0);
    auto one = store->request(pending->front().id);
    REQUIRE_OK(one);
    CHECK((*one)->state == ci::store::RequestState::Pending);
    CHECK_FALSE(store->request(9999)->has_value());
}

TEST_CASE("store: schema 6 gains trigger steps' requests; a trigger is queued once") {
    ci::test::TempDir dir;
    const auto path = dir / "v6.sqlite";
    {
        auto store = open(path);
        REQUIRE_OK(store->write({ci::store::Batch{{}, {request_for("tests", "a")}, {}}}, t0));
    }
    execute_sql(path,
                std::string(undo_schema_7) + without_schema_8_steps + "PRAGMA user_version=6");
    auto store = open(path);
    auto kept = store->requests(ci::store::RequestState::Pending);
    REQUIRE_OK(kept);
    REQUIRE(kept->size() == 1); // migrated: not pinned, not triggered
    CHECK_FALSE((*kept)[0].request.pinned_merge.has_value());
    CHECK((*kept)[0].request.triggered_by_request == 0);

    auto acceptance = request_for("acceptance", std::string(40, 'b'));
    acceptance.scheduler = "triggered";
    acceptance.pinned_merge = ci::sched::PinnedMerge{"master", std::string(40, 'c')};
    auto docs = request_for("docs", std::string(40, 'b'));
    docs.pinned_merge = ci::sched::PinnedMerge{"", ""}; // pinned: built as pushed
    const auto source = (*kept)[0].id;
    auto first = store->trigger(source, 2, {acceptance, docs}, t0);
    REQUIRE_OK(first);
    CHECK(first->created);
    REQUIRE(first->request_ids.size() == 2);
    // Asked again (the build retried, the master restarted): the same requests, none new.
    auto again = store->trigger(source, 2, {acceptance, docs}, t0 + 5s);
    REQUIRE_OK(again);
    CHECK_FALSE(again->created);
    CHECK(again->request_ids == first->request_ids);
    CHECK(store->requests(ci::store::RequestState::Pending)->size() == 3);
    // Another step of the same request is another trigger.
    auto other = store->trigger(source, 3, {acceptance}, t0);
    REQUIRE_OK(other);
    CHECK(other->created);
    CHECK(store->requests(ci::store::RequestState::Pending)->size() == 4);

    auto stored = store->request(first->request_ids[0]);
    REQUIRE_OK(stored);
    REQUIRE(stored->has_value());
    const auto& request = (*stored)->request;
    CHECK(request.builder == "acceptance");
    CHECK(request.revision == std::string(40, 'b'));
    CHECK(request.pinned_merge ==
          std::optional(ci::sched::PinnedMerge{"master", std::string(40, 'c')}));
    CHECK(request.triggered_by_request == source);
    CHECK(request.triggered_by_step == 2);
    CHECK(request.properties == std::map<std::string, std::string>{{"k", "v"}});
    auto unmerged = store->request(first->request_ids[1]);
    REQUIRE_OK(unmerged);
    CHECK((*unmerged)->request.pinned_merge == std::optional(ci::sched::PinnedMerge{"", ""}));

    // What the build page lists: the requests of every trigger step of `source`, by step.
    auto triggered = store->requests_triggered_by(source);
    REQUIRE_OK(triggered);
    REQUIRE(triggered->size() == 3);
    CHECK((*triggered)[0].id == first->request_ids[0]);
    CHECK((*triggered)[1].id == first->request_ids[1]);
    CHECK((*triggered)[2].id == other->request_ids[0]);
    CHECK((*triggered)[2].request.triggered_by_step == 3);
    CHECK(store->requests_triggered_by(first->request_ids[0])->empty());
    CHECK(store->requests_triggered_by(0)->empty()); // not "every untriggered request"
}

TEST_CASE("store: latest_builds gives the newest build of each builder, repository and branch") {
    ci::test::TempDir dir;
    auto store = open(dir / "state.sqlite");
    CHECK(store->latest_builds()->empty());
    // tests on master twice, tests on feature, docs on master; the second master build runs.
    auto feature = request_for("tests", "f1");
    feature.branch = "feature";
    auto other_repository = request_for("tests", "o1");
    other_repository.repository = "other";
    REQUIRE_OK(store->write({ci::store::Batch{{},
                                              {request_for("tests", "m1"),
                                               feature,
                                               request_for("docs", "d1"),
                                               request_for("tests", "m2"),
                                               other_repository},
                                              {}}},
                            t0));
    std::map<std::string, std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        auto request = store->claim({"tests", "docs"}, "d");
        REQUIRE_OK(request);
        REQUIRE(request->has_value());
        auto id = store->start_build((*request)->id, (*request)->request.builder, "w", t0 + i * 1s);
        REQUIRE_OK(id);
        ids[(*request)->request.revision] = *id;
        if ((*request)->request.revision != "m2") {
            auto build = store->build(*id);
            REQUIRE_OK(build);
            auto ended = **build;
            ended.finished = t0 + 10s;
            ended.result = ci::BuildResult::Failure;
            REQUIRE_OK(store->end_build(ended, ci::store::RequestState::Completed, {}));
        }
    }
    auto latest = store->latest_builds();
    REQUIRE_OK(latest);
    std::map<std::string, ci::store::BranchBuild> by_key;
    for (auto& entry : *latest) {
        by_key[entry.build.builder + " " + entry.repository + " " + entry.branch] = entry;
    }
    REQUIRE(by_key.size() == 4);
    CHECK(by_key["tests app master"].build.id == ids["m2"]);
    CHECK_FALSE(by_key["tests app master"].build.finished.has_value());
    CHECK(by_key["tests app feature"].build.id == ids["f1"]);
    CHECK(by_key["tests app feature"].build.result == ci::BuildResult::Failure);
    CHECK(by_key["docs app master"].build.id == ids["d1"]);
    CHECK(by_key["tests other master"].build.id == ids["o1"]);
}
