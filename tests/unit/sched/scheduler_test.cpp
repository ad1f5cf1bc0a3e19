// The scheduler's rules, each as a scenario on a virtual clock: no sleeps.

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/sched/scheduler.h>

#include "support/require_ok.h"

namespace {

using namespace std::chrono_literals;
using ci::sched::Action;
using ci::sched::Change;
using ci::sched::RequestBuild;
using ci::sched::WallTime;

const WallTime t0 = std::chrono::system_clock::from_time_t(1764000000); // 2025-11-24 16:00 UTC

ci::config::Config config_for(const std::string& schedulers) {
    const std::string yaml = R"(
slaves:
  local: {local: true}
repositories:
  app: {url: /srv/app.git}
builders:
  tests: {repository: app, workers: [local], steps: [{name: t, run: make check}]}
  docs: {repository: app, workers: [local], steps: [{name: d, run: make docs}]}
schedulers:
)" + schedulers;
    auto checked = ci::config::parse_config(yaml, "test.yml");
    std::string diagnostics;
    for (const auto& d : checked.diagnostics) {
        diagnostics += d.to_string() + "\n";
    }
    INFO(diagnostics);
    REQUIRE(checked.ok());
    return *checked.config;
}

const char* branch_scheduler = R"(
  main:
    type: branch
    repository: app
    builders: [tests, docs]
    branches: ["master", "release/*"]
    important_files: ["src/*", "setup.py"]
    tree_stable_timer: 5s
    max_wait: 12s
  force: {type: force, builders: [tests, docs]}
)";

ci::sched::Scheduler make(const std::string& schedulers = branch_scheduler) {
    auto scheduler = ci::sched::Scheduler::create(config_for(schedulers));
    REQUIRE_OK(scheduler);
    return std::move(*scheduler);
}

int next_change_id = 1;

ci::sched::Push
push(const std::string& branch,
     const std::string& revision,
     std::optional<std::vector<std::string>> files = std::vector<std::string>{"src/main.cpp"},
     bool is_tag = false) {
    Change change;
    change.id = next_change_id++;
    change.repository = "app";
    change.branch = branch;
    change.is_tag = is_tag;
    change.revision = revision;
    change.files = std::move(files);
    return ci::sched::Push{{change}};
}

std::vector<Action>
feed(ci::sched::Scheduler& scheduler, const ci::sched::Event& event, WallTime now) {
    auto actions = scheduler.handle(event, now);
    REQUIRE_OK(actions);
    return *actions;
}

std::vector<RequestBuild> builds(const std::vector<Action>& actions) {
    std::vector<RequestBuild> out;
    for (const auto& action : actions) {
        if (const auto* build = std::get_if<RequestBuild>(&action)) {
            out.push_back(*build);
        }
    }
    return out;
}

} // namespace

TEST_CASE("sched: an important change waits for the tree to be stable, then builds") {
    auto scheduler = make();
    const auto first = push("master", "aaa");
    auto actions = feed(scheduler, first, t0);
    CHECK(builds(actions).empty());
    REQUIRE(actions.size() == 1);
    const auto& saved = std::get<ci::sched::SaveWait>(actions[0]).wait;
    CHECK(saved.deadline == t0 + 5s);
    CHECK(scheduler.next_deadline() == t0 + 5s);

    CHECK(builds(feed(scheduler, ci::sched::Tick{}, t0 + 4s)).empty());
    const auto done = builds(feed(scheduler, ci::sched::Tick{}, t0 + 5s));
    REQUIRE(done.size() == 2); // one per builder
    CHECK(done[0].builder == "tests");
    CHECK(done[1].builder == "docs");
    CHECK(done[0].revision == "aaa");
    CHECK(done[0].branch == "master");
    CHECK(done[0].change_ids == std::vector<std::int64_t>{first.changes[0].id});
    CHECK(done[0].reason == "branch master changed (1 change)");
    CHECK_FALSE(scheduler.next_deadline().has_value());
    CHECK(scheduler.waits().empty());
}

TEST_CASE("sched: each push restarts the wait; one build covers every change") {
    auto scheduler = make();
    const auto a = push("master", "aaa");
    const auto b = push("master", "bbb");
    feed(scheduler, a, t0);
    feed(scheduler, b, t0 + 3s);
    CHECK(builds(feed(scheduler, ci::sched::Tick{}, t0 + 5s)).empty()); // the first deadline
    const auto done = builds(feed(scheduler, ci::sched::Tick{}, t0 + 8s));
    REQUIRE(done.size() == 2);
    CHECK(done[0].revision == "bbb");
    CHECK(done[0].change_ids == std::vector<std::int64_t>{a.changes[0].id, b.changes[0].id});
}

TEST_CASE("sched: an unimportant change extends a running wait but never starts one") {
    auto scheduler = make();
    const auto docs_only = std::vector<std::string>{"docs/index.rst"};
    auto actions = feed(scheduler, push("master", "d1", docs_only), t0);
    CHECK(actions.empty());
    CHECK(scheduler.waits().empty());

    feed(scheduler, push("master", "s1"), t0 + 10s);
    feed(scheduler, push("master", "d2", docs_only), t0 + 14s); // extends to t0+19
    CHECK(builds(feed(scheduler, ci::sched::Tick{}, t0 + 15s)).empty());
    const auto done = builds(feed(scheduler, ci::sched::Tick{}, t0 + 19s));
    REQUIRE_FALSE(done.empty());
    CHECK(done[0].revision == "d2");
    CHECK(done[0].change_ids.size() == 2);

    // A change whose files are unknown (polled) is important.
    CHECK_FALSE(feed(scheduler, push("master", "p1", std::nullopt), t0 + 30s).empty());
}

TEST_CASE("sched: max_wait caps a stream of pushes") {
    auto scheduler = make();
    // A push every 3 s would postpone a 5 s timer forever; the 12 s cap ends the wait.
    std::vector<RequestBuild> done;
    int fired_at = -1;
    for (int i = 0; i <= 6 && done.empty(); ++i) {
        const auto now = t0 + std::chrono::seconds(3 * i);
        done = builds(feed(scheduler, ci::sched::Tick{}, now));
        if (done.empty()) {
            feed(scheduler, push("master", "r" + std::to_string(i)), now);
        } else {
            fired_at = 3 * i;
        }
    }
    REQUIRE_FALSE(done.empty());
    CHECK(fired_at == 12);           // started at t0, capped at t0 + 12 s
    CHECK(done[0].revision == "r3"); // the newest push before the cap
    CHECK(done[0].change_ids.size() == 4);
    CHECK(scheduler.waits().empty());
}

TEST_CASE("sched: which branches and tags build") {
    auto scheduler = make();
    CHECK(feed(scheduler, push("feature/x", "f1"), t0).empty());
    CHECK_FALSE(feed(scheduler, push("release/1.2", "r1"), t0).empty());
    CHECK(feed(scheduler, push("nightly", "n1", {}, true), t0).empty());
    // The default tags: the old deployment's release rule (config::release_tag_regex, its
    // cases in config_test).
    for (const char* tag : {"1.2.3", "1.2.3.dev1", "1.2.3+doc1", "10.20.30"}) {
        CAPTURE(tag);
        CHECK_FALSE(feed(scheduler, push(tag, "t", {}, true), t0).empty());
    }
    for (const char* tag : {"v1.2.3", "1.2", "10.0", "1.2.3.pre1"}) {
        CAPTURE(tag);
        CHECK(feed(scheduler, push(tag, "t", {}, true), t0).empty());
    }
}

TEST_CASE("sched: a force request bypasses the wait; unknown builders are refused") {
    auto scheduler = make();
    ci::sched::ForceRequest force;
    force.builders = {"tests"};
    force.branch = "feature/x";
    force.revision = "fff";
    force.reason = "try it";
    force.who = "alice";
    force.properties = {{"debug", "1"}};
    const auto done = builds(feed(scheduler, force, t0));
    REQUIRE(done.size() == 1);
    CHECK(done[0].builder == "tests");
    CHECK(done[0].repository == "app");
    CHECK(done[0].branch == "feature/x");
    CHECK(done[0].revision == "fff");
    CHECK(done[0].reason == "forced: try it (by alice)");
    CHECK(done[0].properties.at("debug") == "1");

    ci::sched::ForceRequest everything;
    const auto all = builds(feed(scheduler, everything, t0));
    REQUIRE(all.size() == 2);
    CHECK(all[0].branch == "master"); // the repository's default branch

    force.builders = {"nope"};
    auto refused = scheduler.handle(force, t0);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.find("no force scheduler offers builder \"nope\"") !=
          std::string::npos);
}

TEST_CASE("sched: deleting a branch ends its wait without a build") {
    auto scheduler = make();
    feed(scheduler, push("release/2", "r"), t0);
    const auto actions = feed(scheduler, ci::sched::RefDeleted{"app", "release/2", false}, t0 + 1s);
    REQUIRE(actions.size() == 1);
    CHECK(std::get<ci::sched::ClearWait>(actions[0]).branch == "release/2");
    CHECK(builds(feed(scheduler, ci::sched::Tick{}, t0 + 60s)).empty());
}

TEST_CASE("sched: after a restart the remaining wait resumes; it does not start over") {
    ci::sched::SavedState saved;
    {
        auto before = make();
        feed(before, push("master", "aaa"), t0);
        feed(before, push("master", "bbb"), t0 + 2s); // deadline t0+7s
        saved.waits = before.waits();
    }
    auto after = make();
    after.restore(saved, t0 + 4s);
    CHECK(after.next_deadline() == t0 + 7s);
    CHECK(builds(feed(after, ci::sched::Tick{}, t0 + 6s)).empty());
    const auto done = builds(feed(after, ci::sched::Tick{}, t0 + 7s));
    REQUIRE(done.size() == 2);
    CHECK(done[0].revision == "bbb");
    CHECK(done[0].change_ids.size() == 2);

    // A deadline that passed while the master was down fires at the first tick.
    auto late = make();
    late.restore(saved, t0 + 60s);
    CHECK(builds(feed(late, ci::sched::Tick{}, t0 + 60s)).size() == 2);
}

TEST_CASE("sched: collapsing is explicit and recorded on the request") {
    auto collapsing = make(R"(
  main: {type: branch, repository: app, builders: [tests], collapse_requests: true,
         tree_stable_timer: 0s}
)");
    const auto done = builds(feed(collapsing, push("master", "x"), t0));
    REQUIRE(done.size() == 1); // a zero timer builds at once
    CHECK(done[0].collapsible);
    auto plain = make(R"(
  main: {type: branch, repository: app, builders: [tests], tree_stable_timer: 0s}
)");
    CHECK_FALSE(builds(feed(plain, push("master", "x"), t0))[0].collapsible);
}

TEST_CASE("sched: periodic schedulers") {
    auto scheduler = make(R"(
  hourly: {type: periodic, repository: app, builders: [tests], interval: 1h}
  nightly: {type: periodic, repository: app, builders: [docs], at: "03:00", branch: release/1}
)");
    // A fresh state: due at once, so that the first tick gives each its next run (no other
    // event needed; a master with only periodic schedulers gets none).
    REQUIRE(scheduler.next_deadline().has_value());
    CHECK(*scheduler.next_deadline() <= t0);
    auto first = feed(scheduler, ci::sched::Tick{}, t0);
    CHECK(builds(first).empty());
    CHECK(std::ranges::count_if(first, [](const auto& action) {
              return std::holds_alternative<ci::sched::SavePeriodic>(action);
          }) == 2);
    CHECK(scheduler.next_deadline() == t0 + 1h);
    auto hourly = builds(feed(scheduler, ci::sched::Tick{}, t0 + 1h));
    REQUIRE(hourly.size() == 1);
    CHECK(hourly[0].builder == "tests");
    CHECK(hourly[0].reason == "periodic");
    CHECK(hourly[0].branch == "master");

    // t0 is 16:00 UTC: the nightly build runs at 03:00 the next day, on its branch.
    const WallTime three_am = std::chrono::floor<std::chrono::days>(t0) + 24h + 3h;
    auto nightly = builds(feed(scheduler, ci::sched::Tick{}, three_am));
    std::vector<std::string> builders;
    builders.reserve(nightly.size());
    for (const auto& build : nightly) {
        builders.push_back(build.builder + "@" + build.branch);
    }
    CHECK(std::ranges::find(builders, "docs@release/1") != builders.end());

    // The next run survives a restart.
    ci::sched::SavedState saved;
    saved.periodic_next_runs = {{"hourly", t0 + 10h}};
    auto restarted = make(R"(
  hourly: {type: periodic, repository: app, builders: [tests], interval: 1h}
)");
    restarted.restore(saved, t0 + 9h);
    CHECK(restarted.next_deadline() == t0 + 10h);
}

TEST_CASE("sched: the same 10,000 events give the same build requests on every run") {
    const auto run = [] {
        auto scheduler = make();
        std::mt19937 random(20261124);
        const std::vector<std::string> branches = {
            "master", "release/1", "release/2", "feature/a", "1.0.0"};
        std::vector<RequestBuild> all;
        WallTime now = t0;
        for (int i = 0; i < 10000; ++i) {
            now += std::chrono::milliseconds(random() % 4000);
            const auto& branch = branches[random() % branches.size()];
            const bool docs = random() % 3 == 0;
            ci::sched::Event event =
                random() % 10 == 0
                    ? ci::sched::Event(ci::sched::Tick{})
                    : ci::sched::Event(push(branch,
                                            "r" + std::to_string(i),
                                            std::vector<std::string>{docs ? "docs/x" : "src/x"},
                                            branch == "1.0.0"));
            auto actions = scheduler.handle(event, now);
            REQUIRE_OK(actions);
            for (auto& build : builds(*actions)) {
                all.push_back(std::move(build));
            }
        }
        auto rest = scheduler.handle(ci::sched::Tick{}, now + 1h);
        REQUIRE_OK(rest);
        for (auto& build : builds(*rest)) {
            all.push_back(std::move(build));
        }
        return all;
    };
    next_change_id = 1;
    const auto first = run();
    next_change_id = 1;
    const auto second = run();
    CHECK(first.size() > 100);
    CHECK(first == second);
}

TEST_CASE("sched: a poller's refs become pushes and deletions") {
    const std::map<std::string, std::string> before = {
        {"refs/heads/master", "a"}, {"refs/heads/old", "o"}, {"refs/pull/1/head", "p"}};
    const std::map<std::string, std::string> after = {{"refs/heads/master", "b"},
                                                      {"refs/heads/new", "n"},
                                                      {"refs/tags/1.0", "t"},
                                                      {"refs/pull/1/head", "q"}};
    const auto events = ci::sched::poll_events("app", before, after, t0);
    REQUIRE(events.size() == 4);
    const auto& master = std::get<ci::sched::Push>(events[0]).changes[0];
    CHECK(master.branch == "master");
    CHECK(master.revision == "b");
    CHECK_FALSE(master.files.has_value());
    CHECK(std::get<ci::sched::Push>(events[1]).changes[0].branch == "new");
    CHECK(std::get<ci::sched::Push>(events[2]).changes[0].is_tag);
    CHECK(std::get<ci::sched::RefDeleted>(events[3]).branch == "old");
    CHECK(ci::sched::poll_events("app", after, after, t0).empty());

    // Refs git would refuse, from a remote that lists anything, build nothing.
    const std::map<std::string, std::string> odd = {{"refs/heads/a..b", "c"},
                                                    {"refs/heads/" + std::string(2000, 'x'), "d"},
                                                    {"refs/heads/sp ace", "e"}};
    CHECK(ci::sched::poll_events("app", {}, odd, t0).empty());
    CHECK(ci::sched::poll_events("app", odd, {}, t0).empty());
}

TEST_CASE("scheduler: deadlines moved later are not reported early; due waits fire in key order") {
    auto scheduler = make(R"(
  main:
    type: branch
    repository: app
    builders: [tests]
    branches: ["*"]
    tree_stable_timer: 5s
    max_wait: 1h
)");
    // Three branches pushed at t0, t0+1s, t0+2s; the first pushed again at t0+3s.
    REQUIRE_OK(scheduler.handle(push("c", "c1"), t0));
    REQUIRE_OK(scheduler.handle(push("a", "a1"), t0 + 1s));
    REQUIRE_OK(scheduler.handle(push("b", "b1"), t0 + 2s));
    CHECK(scheduler.next_deadline() == std::optional(t0 + 5s));
    REQUIRE_OK(scheduler.handle(push("c", "c2"), t0 + 3s));
    // c's old deadline (t0+5s) is gone: a's (t0+6s) is next.
    CHECK(scheduler.next_deadline() == std::optional(t0 + 6s));
    auto none = scheduler.handle(ci::sched::Tick{}, t0 + 5s);
    REQUIRE_OK(none);
    CHECK(builds(*none).empty());
    // All due at once: requests come in (scheduler, repository, branch) order, not deadline order.
    auto due = scheduler.handle(ci::sched::Tick{}, t0 + 9s);
    REQUIRE_OK(due);
    const auto requests = builds(*due);
    REQUIRE(requests.size() == 3);
    CHECK(requests[0].branch == "a");
    CHECK(requests[1].branch == "b");
    CHECK(requests[2].branch == "c");
    CHECK(requests[2].revision == "c2");
    CHECK_FALSE(scheduler.next_deadline().has_value());
    CHECK(scheduler.waits().empty());

    // A restored wait replaces the one of the same key, deadline included.
    REQUIRE_OK(scheduler.handle(push("d", "d1"), t0 + 10s));
    ci::sched::SavedState saved;
    saved.waits = scheduler.waits();
    saved.waits[0].deadline = t0 + 30s;
    scheduler.restore(saved, t0 + 11s);
    CHECK(scheduler.next_deadline() == std::optional(t0 + 30s));
}
