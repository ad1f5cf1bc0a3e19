// The master in process, through its HTTP routes: a real store in a temp directory, real
// sockets on 127.0.0.1, a local worker running real processes.

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <sys/resource.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/report/reporter.h>
#include <ci/store/store.h>

#include "support/master_fixture.h"
#include "support/origin.h"

using ci::test::MasterFixture;
using namespace std::chrono_literals;

namespace {

rapidjson::Document json_of(const ci::http::Response& response) {
    rapidjson::Document document;
    document.Parse(response.body.data(), response.body.size());
    INFO(response.body);
    REQUIRE_FALSE(document.HasParseError());
    return document;
}

std::string text_of(const rapidjson::Value& value, const char* key) {
    const auto member = value.FindMember(key);
    return member != value.MemberEnd() && member->value.IsString() ? member->value.GetString()
                                                                   : std::string();
}

// A config with one repository at `url`, a builder `tests` on `workers`, and a webhook secret.
std::string webhook_config(const std::string& url, const std::string& steps, const char* workers) {
    return fmt::format(R"(
github: {{webhook_secret: hook-secret}}
aws: {{identifier: AKIAROUTESTEST, secret_identifier: never-used, endpoint_url: "http://127.0.0.1:9"}}
slaves:
  local: {{local: true, max_builds: 2}}
  remote: {{passwords: [pw-0]}}
  latent: {{ami: ci-image, slaves: 1}}
repositories: {{app: {{url: "{}"}}}}
builders:
  tests: {{repository: app, workers: [{}], steps: [{}]}}
schedulers:
  branches: {{type: branch, repository: app, builders: [tests], branches: ["*"],
             tree_stable_timer: 1s}}
  force: {{type: force, builders: [tests]}}
)",
                       url,
                       workers,
                       steps);
}

ci::http::Response send_push(MasterFixture& m,
                             const std::string& body,
                             const std::string& delivery,
                             const std::string& secret = "hook-secret") {
    return m.post("/change_hook/github",
                  body,
                  {{"Content-Type", "application/json"},
                   {"X-GitHub-Event", "push"},
                   {"X-GitHub-Delivery", delivery},
                   {"X-Hub-Signature-256", ci::test::github_signature(secret, body)}});
}

// Forces a build of `tests`; returns its build id once it runs.
std::int64_t force_and_wait_running(MasterFixture& m) {
    const auto forced = m.post_auth("/api/v1/builders/tests/force", R"({"reason": "test"})");
    REQUIRE(forced.status == 202);
    std::int64_t id = 0;
    m.wait_for("/api/v1/builds", [&](const ci::http::Response& r) {
        auto builds = json_of(r);
        if (builds["builds"].Empty()) {
            return false;
        }
        id = builds["builds"][0]["id"].GetInt64();
        return true;
    });
    REQUIRE(id > 0);
    return id;
}

// Waits until step `step` of build `id` has started.
void wait_step_started(MasterFixture& m, std::int64_t id, int step) {
    const auto response = m.wait_for(fmt::format("/api/v1/builds/{}", id), [&](const auto& r) {
        auto build = json_of(r);
        return build.HasMember("steps") && build["steps"].Size() > static_cast<unsigned>(step);
    });
    REQUIRE(json_of(response)["steps"].Size() > static_cast<unsigned>(step));
}

std::string wait_result(MasterFixture& m, std::int64_t id) {
    const auto response = m.wait_for(fmt::format("/api/v1/builds/{}", id), [](const auto& r) {
        return text_of(json_of(r), "result") != "running";
    });
    return text_of(json_of(response), "result");
}

} // namespace

TEST_CASE("master: webhooks are verified, de-duplicated, and refused without storing") {
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    const auto body = ci::test::push_payload("/srv/app.git", "feature/x", std::string(40, 'a'));

    auto unsigned_push = m.post(
        "/change_hook/github", body, {{"X-GitHub-Event", "push"}, {"X-GitHub-Delivery", "d-0"}});
    CHECK(unsigned_push.status == 403);
    CHECK(send_push(m, body, "d-1", "wrong-secret").status == 403);
    CHECK(json_of(m.get("/api/v1/changes"))["changes"].Empty());

    const auto accepted = send_push(m, body, "d-2");
    CHECK(accepted.status == 200);
    CHECK(json_of(accepted)["changes"].Size() == 1);
    const auto again = send_push(m, body, "d-2");
    CHECK(again.status == 200);
    CHECK(json_of(again)["duplicate"].GetBool());
    CHECK(json_of(m.get("/api/v1/changes"))["changes"].Size() == 1);

    // A body that is not a push is refused, and its delivery is not remembered: sent again
    // with a good body it is new.
    CHECK(send_push(m, "not json", "d-3").status == 400);
    CHECK(send_push(m, body, "d-3").status == 200);
    CHECK(json_of(m.get("/api/v1/changes"))["changes"].Size() == 2);

    const auto ping =
        m.post("/change_hook/github",
               "{}",
               {{"X-GitHub-Event", "ping"},
                {"X-Hub-Signature-256", ci::test::github_signature("hook-secret", "{}")}});
    CHECK(ping.status == 200);
    CHECK(json_of(ping)["pong"].GetBool());

    const auto metrics = m.get("/metrics").body;
    CHECK(metrics.find("ci_webhooks_total{outcome=\"accepted\"} 2") != std::string::npos);
    CHECK(metrics.find("ci_webhooks_total{outcome=\"rejected\"} 2") != std::string::npos);
    CHECK(metrics.find("ci_webhooks_total{outcome=\"duplicate\"} 1") != std::string::npos);
    CHECK(metrics.find("ci_store_errors_total 0") != std::string::npos);
}

TEST_CASE("master: every POST route needs the config's auth; without auth the API is read-only") {
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    const auto index = json_of(m.get("/api/v1"));
    int posts = 0;
    for (const auto& endpoint : index["endpoints"].GetArray()) {
        std::string path = endpoint.GetString();
        if (!path.ends_with(" (POST)")) {
            continue;
        }
        ++posts;
        path = path.substr(0, path.size() - 7);
        path = std::regex_replace(path, std::regex(R"(\{name\})"), "tests");
        path = std::regex_replace(path, std::regex(R"(\{id\})"), "1");
        INFO(path);
        const auto anonymous = m.post(path, "{}");
        CHECK(anonymous.status == 401);
        // Issue 14: a 401 carried no challenge, so a browser never asked for a password.
        REQUIRE(anonymous.header("WWW-Authenticate") != nullptr);
        CHECK(*anonymous.header("WWW-Authenticate") == R"(Basic realm="libci")");
        // Another user each time: wrong passwords count per (address, user), 5 free.
        const auto wrong =
            m.post(path,
                   "{}",
                   {{"Authorization",
                     "Basic " + ci::crypto::base64_encode("intruder" + std::to_string(posts) +
                                                          ":wrong")}});
        CHECK(wrong.status == 401);
        CHECK(wrong.header("WWW-Authenticate") != nullptr);
        const auto status = m.post_auth(path, R"({"class": "latent"})").status;
        CHECK(status != 401);
        CHECK(status != 403);
    }
    // force, force several, cancel, stop, tokens, drain, undrain, worker pause/resume/shutdown
    CHECK(posts == 8);

    MasterFixture open(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"),
                       false);
    const auto refused = open.post("/api/v1/builders/tests/force", "{}");
    CHECK(refused.status == 403);
    CHECK(text_of(json_of(refused), "error").find("read-only") != std::string::npos);
}

TEST_CASE("master: unknown paths are 404; a known path with another method is 405") {
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    CHECK(m.get("/api/v1/nothing").status == 404);
    CHECK(m.get("/nothing").status == 404);
    CHECK(m.get("/api/v1/builds/x").status == 404);
    CHECK(m.get("/api/v1/builds/99").status == 404);
    const auto wrong = m.get("/change_hook/github");
    CHECK(wrong.status == 405);
    REQUIRE(wrong.header("Allow") != nullptr);
    CHECK(*wrong.header("Allow") == "POST");
    CHECK(m.post_auth("/api/v1/builds").status == 405);
    CHECK(m.get("/api/v1/buildrequests?state=nope").status == 400);
    // A limit (or before, request) that is not an integer in range is a 400 naming it, not
    // silently ignored.
    for (const auto* path : {"/api/v1/builds?limit=abc",
                             "/api/v1/builds?limit=0",
                             "/api/v1/builds?limit=1001",
                             "/api/v1/builds?before=x",
                             "/api/v1/builds?request=-1",
                             "/api/v1/changes?limit=abc",
                             "/api/v1/changes?limit=99999999999999999999",
                             "/api/v1/buildrequests?limit=abc",
                             "/api/v1/buildrequests?limit=100001"}) {
        INFO(path);
        const auto refused = m.get(path);
        CHECK(refused.status == 400);
        const std::string parameter = std::string(path).substr(std::string(path).find('?') + 1);
        CHECK(text_of(json_of(refused), "error")
                  .starts_with("query parameter " + parameter.substr(0, parameter.find('='))));
    }
    CHECK(m.get("/api/v1/builds?limit=1000&before=5").status == 200);
    CHECK(m.get("/api/v1/changes?limit=1").status == 200);
    CHECK(m.get("/api/v1/buildrequests?limit=100000").status == 200);
    CHECK(m.get("/healthz").status == 200);
    // Issue 14: /healthz answered any method.
    const auto posted = m.post("/healthz", "{}");
    CHECK(posted.status == 405);
    REQUIRE(posted.header("Allow") != nullptr);
    CHECK(*posted.header("Allow") == "GET, HEAD");
}

TEST_CASE("master: a running step's log is followed live, as text and as events") {
    ci::test::Origin origin;
    ci::test::TempDir work;
    const auto release = work / "release";
    const auto step = fmt::format(
        R"({{name: test, run: "echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second"}})",
        release.string());
    MasterFixture m(webhook_config(origin.url(), step, "local"));
    const auto id = force_and_wait_running(m);
    wait_step_started(m, id, 1);
    const auto log_path = fmt::format("/api/v1/builds/{}/steps/1/log", id);
    // A step's log: "$ command", its output, then how it ended.
    const auto so_far = m.wait_for(
        log_path, [](const auto& r) { return r.body.find("first\n") != std::string::npos; });
    CHECK(so_far.body.starts_with("$ echo first;"));
    CHECK(so_far.body.ends_with("\nfirst\n")); // not followed: what there is now

    ci::http::Response followed;
    ci::http::Response events;
    ci::http::Response no_such_step;
    ci::http::Response no_such_step_events;
    std::thread follower([&] { followed = m.get(log_path + "?follow=1"); });
    std::thread listener(
        [&] { events = m.get(fmt::format("/api/v1/builds/{}/steps/1/events", id)); });
    // Issue 14: a step the builder does not have was followed until the build ended, then
    // answered 200 with an empty log.
    std::thread stray(
        [&] { no_such_step = m.get(fmt::format("/api/v1/builds/{}/steps/7/log?follow=1", id)); });
    std::thread stray_events(
        [&] { no_such_step_events = m.get(fmt::format("/api/v1/builds/{}/steps/2/events", id)); });
    std::this_thread::sleep_for(300ms); // both connected and primed before the step goes on
    ci::test::write_file(release, "");
    follower.join();
    listener.join();
    stray.join();
    stray_events.join();
    CHECK(no_such_step.status == 404);
    CHECK(no_such_step_events.status == 404);
    CHECK(wait_result(m, id) == "success");
    const auto stored = m.get(log_path).body; // from the store
    CHECK(stored.find("first\nsecond\n-- exited with status 0") != std::string::npos);
    CHECK(followed.status == 200);
    CHECK(followed.body == stored);
    CHECK(events.body.starts_with("id: "));
    CHECK(events.body.find("\nevent: log\ndata: $ echo first;") != std::string::npos);
    CHECK(events.body.find("data: first\n") != std::string::npos);
    CHECK(events.body.find("event: log\ndata: second\n") != std::string::npos);
    CHECK(events.body.ends_with("event: end\ndata: success\n\n"));
    CHECK(m.get(log_path + "?follow=1").body == stored); // finished: whole, at once
    // From the first event's id on: what came after it, once.
    const auto first_id = events.body.substr(4, events.body.find('\n') - 4);
    const auto resumed =
        m.get(fmt::format("/api/v1/builds/{}/steps/1/events?from={}", id, first_id)).body;
    CHECK(resumed.find("echo first") == std::string::npos);
    CHECK(resumed.find("data: second\n") != std::string::npos);
    CHECK(resumed.ends_with("event: end\ndata: success\n\n"));
    CHECK(m.get(fmt::format("/api/v1/builds/{}/steps/1/events?from=x", id)).status == 400);
    CHECK(m.get(fmt::format("/api/v1/builds/{}/steps/7/log", id)).status == 404);
    CHECK(m.get(fmt::format("/api/v1/builds/{}/steps/7/events", id)).status == 404);

    const auto metrics = m.get("/metrics").body;
    // Forced without a branch: the repository's default branch, on a local worker.
    CHECK(metrics.find("ci_builds_finished_total{builder=\"tests\",worker_class=\"local\","
                       "branch_type=\"master\",result=\"success\"} 1") != std::string::npos);
    CHECK(metrics.find("ci_build_duration_seconds_count{builder=\"tests\",worker_class=\"local\","
                       "branch_type=\"master\"} 1") != std::string::npos);
}

TEST_CASE("master: waits pending at a stop end at their deadline after the next start") {
    ci::test::Origin origin;
    MasterFixture m(webhook_config(origin.url(), R"({name: t, run: "true"})", "local"));
    const auto body = ci::test::push_payload(origin.url(), "feature", origin.feature_tip);
    REQUIRE(send_push(m, body, "d-1").status == 200);
    m.stop(); // inside the 1 s tree-stable window
    m.start();
    // No other event: the restored wait ends by itself and its build runs.
    const auto builds = m.wait_for("/api/v1/builds", [](const auto& r) {
        auto list = json_of(r);
        return !list["builds"].Empty() && text_of(list["builds"][0], "result") == "success";
    });
    auto list = json_of(builds);
    REQUIRE(list["builds"].Size() == 1);
    CHECK(text_of(list["builds"][0], "branch") == "feature");
    CHECK(text_of(list["builds"][0], "result") == "success");
}

namespace {

// A reporter of the embedding program's own: it records what the master tells it.
class RecordingReporter final : public ci::report::Reporter {
public:
    std::string name() const override { return "recording"; }
    // With `durable`: each report also as an outbox message, "EVENT REQUEST BUILD REVISION".
    std::vector<ci::store::OutboxMessage> outbox(const ci::report::BuildReport& report) override {
        if (!durable) {
            return {};
        }
        return {{"recording",
                 fmt::format("{} {} {} {}",
                             static_cast<int>(report.event),
                             report.request_id,
                             report.build_id,
                             report.revision),
                 report.at}};
    }
    bool durable = false;
    void report(const ci::report::BuildReport& report) override {
        const std::lock_guard lock(mutex_);
        reports_.push_back(report);
    }
    void operational(const ci::report::OpsEvent& event) override {
        const std::lock_guard lock(mutex_);
        ops_.push_back(event);
    }
    void stop() override { stopped_ = true; }
    std::vector<ci::report::BuildReport> reports() {
        const std::lock_guard lock(mutex_);
        return reports_;
    }
    std::vector<ci::report::OpsEvent> ops() {
        const std::lock_guard lock(mutex_);
        return ops_;
    }
    std::atomic<bool> stopped_{false};

private:
    std::mutex mutex_;
    std::vector<ci::report::BuildReport> reports_;
    std::vector<ci::report::OpsEvent> ops_;
};

} // namespace

TEST_CASE("master: a reporter the embedding program adds is told of requests, starts and ends") {
    ci::test::Origin origin;
    auto recorder = std::make_shared<RecordingReporter>();
    recorder->durable = true;
    ci::master::MasterOptions options;
    options.reporters = {recorder};
    MasterFixture m(
        webhook_config(origin.url(), R"({name: t, run: "true"})", "local"), true, options);
    // Pushed: the pushed tip is the revision of every report (not the merge commit).
    const auto body = ci::test::push_payload(origin.url(), "feature", origin.feature_tip);
    REQUIRE(send_push(m, body, "d-1").status == 200);
    for (int i = 0; i < 600 && recorder->reports().size() < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto seen = recorder->reports();
    REQUIRE(seen.size() == 3);
    using ci::report::BuildEvent;
    CHECK(seen[0].event == BuildEvent::Requested);
    CHECK(seen[1].event == BuildEvent::Started);
    CHECK(seen[2].event == BuildEvent::Finished);
    CHECK(seen[2].result == ci::BuildResult::Success);
    for (const auto& r : seen) {
        CHECK(r.revision == origin.feature_tip);
        CHECK(r.builder == "tests");
        CHECK(r.repository == "app");
        CHECK(r.branch == "feature");
        CHECK(r.request_id == seen[0].request_id);
    }
    CHECK(seen[1].build_id == seen[2].build_id);
    CHECK(seen[0].url.empty());
    CHECK(seen[1].url.ends_with(fmt::format("/api/v1/builds/{}", seen[1].build_id)));

    // Forced without a revision: the start is reported at the checkout, with the branch tip.
    const auto forced = m.post_auth(
        "/api/v1/builders/tests/force",
        R"({"branch": "feature", "properties": {"report_expected_failures": true, "why": "x"}})");
    REQUIRE(forced.status == 202);
    for (int i = 0; i < 600 && recorder->reports().size() < 6; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    seen = recorder->reports();
    REQUIRE(seen.size() == 6);
    CHECK(seen[3].event == BuildEvent::Requested);
    CHECK(seen[3].revision.empty());
    CHECK(seen[3].properties.at("report_expected_failures") == "true");
    CHECK(seen[3].properties.at("why") == "x");
    CHECK(seen[4].event == BuildEvent::Started);
    CHECK(seen[4].revision == origin.feature_tip);
    CHECK(seen[5].event == BuildEvent::Finished);
    CHECK(seen[5].revision == origin.feature_tip);
    CHECK(m.post_auth("/api/v1/builders/tests/force", R"({"properties": {"n": 1}})").status == 400);
    // A reason is a line or two, not a document: 1,025 bytes are refused and nothing is queued.
    const auto long_reason =
        m.post_auth("/api/v1/builders/tests/force",
                    fmt::format(R"({{"reason": "{}"}})", std::string(1025, 'r')));
    CHECK(long_reason.status == 400);
    CHECK(long_reason.body.find("reason: 1025 bytes, at most 1024") != std::string::npos);
    m.stop();
    CHECK(recorder->stopped_);

    // What its outbox() gave was stored with each event (Reporter::outbox): one message per
    // report, in the order of the reports.
    auto store = ci::store::open_sqlite(m.dir / "state.sqlite");
    REQUIRE(store.has_value());
    const auto stored = (*store)->queued_reports("recording");
    REQUIRE(stored.has_value());
    std::vector<std::string> payloads;
    payloads.reserve(stored->size());
    for (const auto& row : *stored) {
        payloads.push_back(row.payload);
    }
    std::vector<std::string> expected;
    expected.reserve(seen.size());
    for (const auto& r : seen) {
        expected.push_back(fmt::format(
            "{} {} {} {}", static_cast<int>(r.event), r.request_id, r.build_id, r.revision));
    }
    CHECK(payloads == expected);
}

TEST_CASE("master: a request cancelled while pending is reported as cancelled") {
    ci::test::Origin origin;
    auto recorder = std::make_shared<RecordingReporter>();
    ci::master::MasterOptions options;
    options.reporters = {recorder};
    // Only a remote worker class, and no worker connects: the request stays pending.
    MasterFixture m(
        webhook_config(origin.url(), R"({name: t, run: "true"})", "remote"), true, options);
    const auto forced = m.post_auth("/api/v1/builders/tests/force", R"({"branch": "feature"})");
    REQUIRE(forced.status == 202);
    const auto id = json_of(forced)["requests"][0].GetInt64();
    const auto cancelled = m.post_auth(fmt::format("/api/v1/buildrequests/{}/cancel", id), "");
    REQUIRE(cancelled.status == 200);
    for (int i = 0; i < 600 && recorder->reports().size() < 2; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto seen = recorder->reports();
    REQUIRE(seen.size() == 2);
    using ci::report::BuildEvent;
    CHECK(seen[0].event == BuildEvent::Requested);
    CHECK(seen[1].event == BuildEvent::Cancelled);
    CHECK(seen[1].result == ci::BuildResult::Cancelled);
    CHECK(seen[1].request_id == id);
    CHECK(seen[1].build_id == 0);
    CHECK(seen[1].builder == "tests");
    CHECK(seen[1].branch == "feature");
    // Cancelling it again changes nothing and reports nothing.
    CHECK(m.post_auth(fmt::format("/api/v1/buildrequests/{}/cancel", id), "").status == 409);
    // A request that does not exist is not found, rather than "not pending".
    const auto missing = m.post_auth(fmt::format("/api/v1/buildrequests/{}/cancel", id + 100), "");
    CHECK(missing.status == 404);
    CHECK(text_of(json_of(missing), "error") == fmt::format("no build request {}", id + 100));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(recorder->reports().size() == 2);
    m.stop();
}

TEST_CASE("master: a disk that fails makes the master degraded; nothing is lost, and it "
          "recovers by itself") {
    ci::test::Origin origin;
    ci::test::TempDir work;
    const auto release = work / "release";
    const auto step =
        fmt::format(R"({{name: test, run: "while [ ! -e {} ]; do sleep 0.05; done; echo done"}})",
                    release.string());
    auto recorder = std::make_shared<RecordingReporter>();
    ci::master::MasterOptions options;
    options.reporters = {recorder};
    MasterFixture m(webhook_config(origin.url(), step, "local"), true, options);
    const auto id = force_and_wait_running(m);
    wait_step_started(m, id, 1);

    // The disk is full: no file of this process may grow (the running step's shell started
    // before, with its own limit). EFBIG instead of SIGXFSZ.
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit saved{};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    rlimit full = saved;
    full.rlim_cur = 0;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &full) == 0);
    ci::test::write_file(release, ""); // empty: creating it writes nothing

    const auto degraded = m.wait_for(
        "/healthz", [](const auto& r) { return r.status == 503; }, 20s);
    const auto push =
        send_push(m, ci::test::push_payload(origin.url(), "feature", origin.feature_tip), "d-full");
    const auto metrics = m.get("/metrics").body;
    const auto during = m.get(fmt::format("/api/v1/builds/{}", id));
    // Told at once (not at the housekeeper's next round, 30 s on).
    // Only the store's events: the latent class's pool reports its own trouble (its endpoint,
    // port 9, refuses), at a time that depends on the machine's speed.
    const auto store_ops = [&] {
        auto ops = recorder->ops();
        std::erase_if(ops, [](const ci::report::OpsEvent& op) {
            return op.kind != ci::report::OpsEvent::Kind::StoreDegraded;
        });
        return ops;
    };
    for (int i = 0; i < 200 && store_ops().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const auto ops = store_ops();
    REQUIRE(setrlimit(RLIMIT_FSIZE, &saved) == 0);

    // The operators heard of it once (Zulip's ops_stream), with the error.
    REQUIRE(ops.size() == 1);
    CHECK(ops[0].source == "store");
    CHECK(ops[0].text.starts_with("the master's writes to its store fail: "));

    CHECK(degraded.status == 503);
    CHECK(text_of(json_of(degraded), "status") == "degraded");
    CHECK_FALSE(text_of(json_of(degraded), "error").empty());
    CHECK(push.status == 503);
    CHECK(metrics.find("ci_store_degraded 1") != std::string::npos);
    CHECK(metrics.find("ci_store_errors_total 0") == std::string::npos);
    CHECK(text_of(json_of(during), "result") == "running"); // its end is not on disk yet

    // The disk works again: the end is written, the master is healthy, nothing was lost.
    CHECK(m.wait_for(
               "/healthz", [](const auto& r) { return r.status == 200; }, 20s)
              .status == 200);
    CHECK(wait_result(m, id) == "success");
    CHECK(m.get(fmt::format("/api/v1/builds/{}/steps/1/log", id)).body.find("\ndone\n") !=
          std::string::npos);
    // The refused webhook stored nothing; sent again, it is new.
    CHECK(json_of(m.get("/api/v1/changes"))["changes"].Empty());
    CHECK(store_ops().size() == 1); // one report for the whole streak
}

TEST_CASE(
    "master: a route that changes something refuses cross-site requests and non-JSON bodies") {
    // Issue 14, item 6: a page of another site could POST text/plain with the user's credentials.
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    const auto auth = "Basic " + ci::crypto::base64_encode(m.user + ":" + m.password);
    const auto force = [&](std::vector<std::pair<std::string, std::string>> headers,
                           const std::string& body = R"({"reason": "csrf"})") {
        headers.emplace_back("Authorization", auth);
        return m.post("/api/v1/builders/tests/force", body, headers);
    };
    const auto error_of = [](const ci::http::Response& response) {
        return text_of(json_of(response), "error");
    };
    const auto cross_origin = force({{"Origin", "https://evil.example"}});
    CHECK(cross_origin.status == 403);
    CHECK(error_of(cross_origin).find("another origin") != std::string::npos);
    CHECK(force({{"Origin", "null"}}).status == 403);
    const auto cross_site = force({{"Sec-Fetch-Site", "cross-site"}});
    CHECK(cross_site.status == 403);
    CHECK(error_of(cross_site).find("another site") != std::string::npos);
    CHECK(force({{"Sec-Fetch-Site", "same-site"}}).status == 403); // a sibling subdomain
    const auto text = force({{"Content-Type", "text/plain"}});
    CHECK(text.status == 415);
    CHECK(error_of(text).find("application/json") != std::string::npos);
    CHECK(force({{"Content-Type", "application/x-www-form-urlencoded"}}).status == 415);
    CHECK(m.get("/api/v1/buildrequests").body.find(R"("buildrequests":[])") != std::string::npos);

    // The same site, and clients that are not browsers, pass.
    const auto here = fmt::format("http://127.0.0.1:{}", m.master->web_port());
    CHECK(force({{"Origin", here}, {"Sec-Fetch-Site", "same-origin"}}).status == 202);
    CHECK(force({{"Sec-Fetch-Site", "none"}}).status == 202); // typed in the address bar
    CHECK(force({{"Content-Type", "application/json; charset=utf-8"}}).status == 202);
    CHECK(force({}, "").status == 202); // no body: no Content-Type needed
    // A GET changes nothing and is not checked.
    CHECK(m.get("/api/v1/builders").status == 200);
}

TEST_CASE("master: wrong passwords and signatures from one address are slowed down, and logged "
          "once per interval") {
    // Issue 14, item 5: 1,000 wrong passwords took 0.1 s and were not logged.
    std::mutex mutex;
    std::vector<std::string> lines;
    ci::log::set_sink([&](ci::log::Level, std::string_view line) {
        const std::lock_guard lock(mutex);
        lines.emplace_back(line);
    });
    const auto lines_with = [&](std::string_view text) {
        const std::lock_guard lock(mutex);
        return std::count_if(lines.begin(), lines.end(), [&](const std::string& line) {
            return line.find(text) != std::string::npos;
        });
    };
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    const std::vector<std::pair<std::string, std::string>> wrong = {
        {"Authorization", "Basic YWRtaW46d3Jvbmc="}};
    SUBCASE("basic auth") {
        for (int i = 0; i < 6; ++i) { // five are free; the sixth starts a wait
            CHECK(m.post("/api/v1/builders/tests/force", "", wrong).status == 401);
        }
        const auto waiting = m.post("/api/v1/builders/tests/force", "", wrong);
        CHECK(waiting.status == 429);
        REQUIRE(waiting.header("Retry-After") != nullptr);
        CHECK(*waiting.header("Retry-After") == "1");
        // While it waits, even the right password is not tried.
        CHECK(m.post_auth("/api/v1/builders/tests/force").status == 429);
        std::this_thread::sleep_for(1100ms);
        CHECK(m.post_auth("/api/v1/builders/tests/force").status == 202);
        // Success forgets the failures: five free ones again.
        for (int i = 0; i < 5; ++i) {
            CHECK(m.post("/api/v1/builders/tests/force", "", wrong).status == 401);
        }
        CHECK(lines_with("wrong user or password") == 1);
        // Anonymous requests (a browser's first try) are no guesses.
        for (int i = 0; i < 10; ++i) {
            CHECK(m.post("/api/v1/builders/tests/force").status == 401);
        }
    }
    SUBCASE("webhook signatures") {
        const auto body = ci::test::push_payload("/srv/app.git", "main", std::string(40, 'a'));
        for (int i = 0; i < 6; ++i) {
            CHECK(send_push(m, body, fmt::format("bad-{}", i), "wrong-secret").status == 403);
        }
        const auto waiting = send_push(m, body, "good-0");
        CHECK(waiting.status == 429);
        CHECK(waiting.header("Retry-After") != nullptr);
        CHECK(lines_with("wrong signature") == 1);
        std::this_thread::sleep_for(1100ms);
        CHECK(send_push(m, body, "good-1").status == 200);
    }
    ci::log::set_sink({});
}

TEST_CASE("master: an API body is at most 64 KiB, a webhook's 25 MiB") {
    MasterFixture m(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"));
    const std::string large(std::size_t{64} * 1024 + 1, ' ');
    CHECK(m.post_auth("/api/v1/builders/tests/force", R"({"reason": "x"})" + large).status == 413);
    CHECK(m.post_auth("/api/v1/builders/tests/force", R"({"reason": "x"})").status == 202);
    // A webhook of 1 MiB (large pushes are) is read, and its signature checked.
    const std::string big_push =
        ci::test::push_payload("/srv/app.git", "main", std::string(40, 'b'));
    const auto padded = big_push.substr(0, big_push.rfind('}')) + R"(, "padding": ")" +
                        std::string(std::size_t{1024} * 1024, 'p') + "\"}";
    CHECK(send_push(m, padded, "big-1").status == 200);
}

TEST_CASE("master: a local worker shut down stays, taking no builds; a restart forgets pause and "
          "shutdown") {
    ci::test::Origin origin;
    MasterFixture m(webhook_config(origin.url(), R"({name: t, run: "true"})", "local"));
    const auto worker_state = [&] {
        return text_of(json_of(m.get("/api/v1/workers/local/0")), "state");
    };
    REQUIRE(m.post_auth("/api/v1/workers/local/0/pause", "").status == 200);
    CHECK(worker_state() == "paused");
    const auto shut = m.post_auth("/api/v1/workers/local/0/shutdown", "");
    REQUIRE(shut.status == 200);
    CHECK(text_of(json_of(shut), "state") == "shutting down");
    CHECK(m.post_auth("/api/v1/workers/local/0/shutdown", "").status == 200); // idempotent
    CHECK(m.post_auth("/api/v1/workers/local/0/resume", "").status == 409);
    CHECK(m.post_auth("/api/v1/workers/local/7/pause", "").status == 404);
    CHECK(m.post_auth("/api/v1/workers/local/0/reboot", "").status == 404);
    // In the master's process: it is not disconnected, only takes no more builds.
    CHECK(worker_state() == "shutting down");
    CHECK(json_of(m.get("/api/v1/workers/local/0"))["connected"].GetBool());
    CHECK(json_of(m.get("/api/v1/workers/local/0"))["paused"].GetBool());

    m.stop();
    m.start();
    CHECK(worker_state() == "idle");
    CHECK_FALSE(json_of(m.get("/api/v1/workers/local/0"))["paused"].GetBool());
}

TEST_CASE("master: the web UI's leftovers: /login without users, workers never connected, grid "
          "filters and the default branch's column") {
    MasterFixture open(webhook_config("/srv/app.git", R"({name: t, run: "true"})", "remote"),
                       false);
    // No users: no form that cannot succeed, but how to add one.
    const auto login = open.get("/login");
    CHECK(login.status == 200);
    CHECK(login.body.find("This master has no users") != std::string::npos);
    CHECK(login.body.find("ci-master hash-password") != std::string::npos);
    CHECK(login.body.find("action=\"/login\"") == std::string::npos);
    CHECK(login.body.find("type=\"password\"") == std::string::npos);

    // remote/0 (a static worker of the config) never connected: listed, as such.
    const auto workers = json_of(open.get("/api/v1/workers"));
    bool listed = false;
    for (const auto& worker : workers["workers"].GetArray()) {
        if (text_of(worker, "name") == "remote/0") {
            listed = true;
            CHECK_FALSE(worker["connected"].GetBool());
            CHECK(text_of(worker, "state") == "never connected");
            CHECK(text_of(worker, "class") == "remote");
        }
    }
    CHECK(listed);
    const auto one = open.get("/api/v1/workers/remote/0");
    CHECK(one.status == 200);
    CHECK(text_of(json_of(one), "state") == "never connected");
    CHECK(open.get("/api/v1/workers/remote/1").status == 404); // one password: one worker
    const auto page = open.get("/workers");
    CHECK(page.status == 200);
    CHECK(page.body.find("<td>remote/0</td>") != std::string::npos);
    CHECK(page.body.find(R"(<span class="result none">never connected</span>)") !=
          std::string::npos);

    // Unknown filters are a 400 naming what they may be, not an empty grid.
    for (const auto* path : {"/api/v1/grid?result=bogus", "/?result=bogus"}) {
        const auto refused = open.get(path);
        INFO(path);
        CHECK(refused.status == 400);
        CHECK(refused.body.find("success, warnings, failure, exception, cancelled, retry, "
                                "running") != std::string::npos);
    }
    for (const auto* path : {"/api/v1/grid?repository=nope", "/?repository=nope"}) {
        const auto refused = open.get(path);
        INFO(path);
        CHECK(refused.status == 400);
        CHECK(refused.body.find("nope") != std::string::npos);
        CHECK(refused.body.find("it has app") != std::string::npos);
    }
    CHECK(open.get("/api/v1/grid?result=&repository=").status == 200); // empty: all
    CHECK(open.get("/api/v1/grid?repository=app&result=failure").status == 200);

    // Before any build: the default branch is a column, its cells empty.
    const auto grid = json_of(open.get("/api/v1/grid"));
    REQUIRE(grid["branches"].Size() == 1);
    CHECK(std::string(grid["branches"][0].GetString()) == "master");
    CHECK(open.get("/").body.find("<th><bdi>master</bdi></th>") != std::string::npos);
}
