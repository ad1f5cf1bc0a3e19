// GitHub commit statuses: the pure rules (which state for which event, contexts, filters,
// verdicts on GitHub's answers), and the reporter's queue against a local HTTP server that
// answers as GitHub does (outages, rate limits, refusals), across a restart.

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <ci/core/log.h>
#include <ci/http/client.h>
#include <ci/report/github.h>
#include <ci/store/store.h>

#include "support/local_http_server.h"
#include "support/recorded.h"
#include "support/require_ok.h"
#include "support/stored_report.h"
#include "support/temp_dir.h"

namespace github = ci::report::github;
using ci::BuildResult;
using ci::report::BuildEvent;
using ci::report::BuildReport;
using namespace std::chrono_literals;

namespace {

const std::string sha = "0123456789abcdef0123456789abcdef01234567";

github::Settings settings() {
    github::Settings s;
    s.token = "ghp_testtokentesttokentesttoken000000";
    s.repositories = {{"app", "ClusterHQ/flocker"}};
    s.failing_builders = {"flaky"};
    s.first_retry = 50ms;
    s.max_retry = 200ms;
    return s;
}

BuildReport report(BuildEvent event, std::string builder = "tests") {
    BuildReport r;
    r.event = event;
    r.request_id = 7;
    r.build_id = event == BuildEvent::Requested ? 0 : 3;
    r.builder = std::move(builder);
    r.repository = "app";
    r.branch = "feature/x";
    r.revision = sha;
    if (event != BuildEvent::Requested) {
        r.url = "http://ci.example.org/api/v1/builds/3";
    }
    return r;
}

BuildReport finished(BuildResult result, std::string builder = "tests") {
    auto r = report(BuildEvent::Finished, std::move(builder));
    r.result = result;
    return r;
}

} // namespace

TEST_CASE("github: which state for which event") {
    const auto s = settings();
    auto requested = github::status_for(report(BuildEvent::Requested), s);
    REQUIRE(requested);
    CHECK(*requested == github::CommitStatus{"ClusterHQ/flocker",
                                             sha,
                                             github::State::Pending,
                                             "",
                                             "Build requested",
                                             "libci/tests"});
    auto started = github::status_for(report(BuildEvent::Started), s);
    REQUIRE(started);
    CHECK(started->state == github::State::Pending);
    CHECK(started->target_url == "http://ci.example.org/api/v1/builds/3");
    CHECK(github::status_for(finished(BuildResult::Success), s)->state == github::State::Success);
    CHECK(github::status_for(finished(BuildResult::Failure), s)->state == github::State::Failure);
    CHECK(github::status_for(finished(BuildResult::Exception), s)->state == github::State::Error);
    CHECK(github::status_for(finished(BuildResult::Cancelled), s)->state == github::State::Error);
    // Retry leaves the status pending: nothing is sent.
    CHECK_FALSE(github::status_for(finished(BuildResult::Retry), s));
    // A request cancelled before it ran: its pending status ends, with no build to link to.
    auto cancelled = report(BuildEvent::Cancelled);
    cancelled.build_id = 0;
    cancelled.url.clear();
    cancelled.result = BuildResult::Cancelled;
    const auto ended = github::status_for(cancelled, s);
    REQUIRE(ended);
    CHECK(ended->state == github::State::Error);
    CHECK(ended->description == "Build cancelled");
    CHECK(ended->target_url.empty());
    CHECK(ended->context == "libci/tests");
    for (const auto result : {BuildResult::Success, BuildResult::Failure, BuildResult::Exception}) {
        const auto status = github::status_for(finished(result), s);
        CHECK(status->description.size() <= github::max_description);
        CHECK(status->sha == sha); // the pushed tip, whatever the build merged
    }
}

TEST_CASE("github: a finished build's test counts in its description, within 140 characters") {
    const auto s = settings();
    const auto with = [&](BuildResult result, ci::build::TestResults tests) {
        auto r = finished(result);
        r.tests = std::move(tests);
        const auto status = github::status_for(r, s);
        REQUIRE(status);
        CHECK(status->description.size() <= github::max_description);
        return status->description;
    };
    ci::build::TestResults passing{118, 0, 2, 0, {}};
    CHECK(with(BuildResult::Success, passing) == "Build succeeded: 118 tests passed, 2 skipped");
    CHECK(with(BuildResult::Warnings, {1, 0, 0, 0, {}}) ==
          "Build succeeded with warnings: 1 test passed");
    ci::build::TestResults failing{117, 2, 0, 1, {"app.test_a", "app.test_b", "app.test_c"}};
    CHECK(with(BuildResult::Failure, failing) ==
          "Build failed: 3 of 120 tests failed (app.test_a, app.test_b, app.test_c)");
    // An infrastructure error says so first.
    CHECK(with(BuildResult::Exception, failing) ==
          "Build failed: an infrastructure error; 3 of 120 tests failed (app.test_a, app.test_b, "
          "app.test_c)");
    // More names than fit: whole names only, then "…"; more failures than names kept: "…".
    ci::build::TestResults many{0, 40, 0, 0, {}};
    for (int i = 0; i < 40; ++i) {
        many.failed_tests.push_back("tests.test_module.Tests.test_" + std::to_string(i));
    }
    const auto long_text = with(BuildResult::Failure, many);
    CHECK(long_text.starts_with("Build failed: 40 of 40 tests failed (tests.test_module.Tests."
                                "test_0, tests.test_module.Tests.test_1, "));
    CHECK(long_text.ends_with(", …)"));
    ci::build::TestResults capped{0, 150, 0, 0, {"a.b"}};
    CHECK(with(BuildResult::Failure, capped) == "Build failed: 150 of 150 tests failed (a.b, …)");
    // A name longer than the room left: the counts alone.
    ci::build::TestResults huge{0, 1, 0, 0, {std::string(300, 'x')}};
    CHECK(with(BuildResult::Failure, huge) == "Build failed: 1 of 1 test failed");
    // Names in UTF-8 are never cut inside a character (whole names only).
    ci::build::TestResults accents{0, 1, 0, 0, {"t\xc3\xa9st"}};
    CHECK(with(BuildResult::Failure, accents) == "Build failed: 1 of 1 test failed (t\xc3\xa9st)");
    // No test cases read, or none reported: the description alone; other events never.
    CHECK(with(BuildResult::Success, {}) == "Build succeeded");
    auto started = report(BuildEvent::Started);
    started.tests = failing;
    CHECK(github::status_for(started, s)->description == "Build started");
}

TEST_CASE("github: what is not reported") {
    auto s = settings();
    SUBCASE("an unknown revision, or a repository without OWNER/REPO") {
        auto r = report(BuildEvent::Requested);
        r.revision.clear();
        CHECK_FALSE(github::status_for(r, s));
        r = report(BuildEvent::Requested);
        r.repository = "mirror";
        CHECK_FALSE(github::status_for(r, s));
    }
    SUBCASE("failing_builders, unless forced with report_expected_failures: true") {
        CHECK_FALSE(github::status_for(report(BuildEvent::Requested, "flaky"), s));
        CHECK_FALSE(github::status_for(finished(BuildResult::Failure, "flaky"), s));
        auto forced = finished(BuildResult::Failure, "flaky");
        forced.properties["report_expected_failures"] = "false";
        CHECK_FALSE(github::status_for(forced, s));
        forced.properties["report_expected_failures"] = "true";
        CHECK(github::status_for(forced, s)->state == github::State::Failure);
        auto old_name = finished(BuildResult::Failure, "flaky");
        old_name.properties["report-expected-failures"] = "true";
        CHECK(github::status_for(old_name, s));
    }
    SUBCASE("builders outside the filter") {
        s.builders = {"flocker*"};
        CHECK_FALSE(github::status_for(report(BuildEvent::Requested, "tests"), s));
        CHECK(github::status_for(report(BuildEvent::Requested, "flocker-docs"), s));
        CHECK(github::reports_builder("flocker", s));
        CHECK_FALSE(github::reports_builder("other-flocker", s));
    }
}

TEST_CASE("github: context naming") {
    auto s = settings();
    CHECK(github::context_for("tests", s) == "libci/tests");
    s.context_prefix = "";
    s.strip_prefix = "flocker-";
    CHECK(github::context_for("flocker-omnibus-centos-7", s) == "omnibus-centos-7");
    CHECK(github::context_for("docs", s) == "docs");         // no prefix to strip
    CHECK(github::context_for("flocker-", s) == "flocker-"); // never an empty context
    s.context_prefix = "omnibus/";
    s.strip_prefix = "flocker-omnibus-";
    CHECK(github::context_for("flocker-omnibus-centos-7", s) == "omnibus/centos-7");
}

TEST_CASE("github: the request, and a status stored and read back") {
    auto s = settings();
    s.api_url = "http://127.0.0.1:9/api/v3/";
    const auto status = *github::status_for(report(BuildEvent::Started), s);
    auto request = github::status_request(status, s);
    REQUIRE_OK(request);
    CHECK(request->method == "POST");
    CHECK(request->url() == "http://127.0.0.1:9/api/v3/repos/ClusterHQ/flocker/statuses/" + sha);
    CHECK(*ci::http::find_header(request->headers, "authorization") == "token " + s.token);
    rapidjson::Document body;
    body.Parse(request->body.c_str());
    REQUIRE(body.IsObject());
    CHECK(std::string(body["state"].GetString()) == "pending");
    CHECK(std::string(body["target_url"].GetString()) == status.target_url);
    CHECK(std::string(body["context"].GetString()) == "libci/tests");
    // Without a URL, no target_url member (GitHub refuses an empty one).
    auto requested = *github::status_for(report(BuildEvent::Requested), s);
    CHECK_FALSE(rapidjson::Document()
                    .Parse(github::status_request(requested, s)->body.c_str())
                    .HasMember("target_url"));

    auto back = github::parse_status(github::to_json(status));
    REQUIRE_OK(back);
    CHECK(*back == status);
    CHECK_FALSE(github::parse_status("{\"state\": \"pending\"}"));
    CHECK_FALSE(github::parse_status("not json"));
    s.api_url = "ftp://x";
    CHECK_FALSE(github::status_request(status, s));
}

TEST_CASE("github: verdicts on GitHub's answers") {
    const auto now = ci::WallTime(std::chrono::seconds(1'700'000'000));
    const auto response = [](int status, ci::http::Headers headers = {}, std::string body = {}) {
        return ci::http::Response{status, std::move(headers), std::move(body), 1};
    };
    using Kind = github::Verdict::Kind;
    CHECK(github::judge(response(201), now).kind == Kind::Sent);
    auto v = github::judge(response(403, {{"Retry-After", "7"}}), now);
    CHECK(v.kind == Kind::Retry);
    CHECK(v.wait == 7s);
    v = github::judge(
        response(403, {{"X-RateLimit-Remaining", "0"}, {"X-RateLimit-Reset", "1700000030"}}), now);
    CHECK(v.kind == Kind::Retry);
    CHECK(v.wait == 30s);
    v = github::judge(
        response(403, {}, R"({"message": "You have exceeded a secondary rate limit"})"), now);
    CHECK(v.kind == Kind::Retry);
    CHECK(v.wait == 60s);
    CHECK(github::judge(response(429), now).wait == 60s);
    v = github::judge(response(502), now);
    CHECK(v.kind == Kind::Retry);
    CHECK(v.wait == 0s); // the backoff decides
    CHECK(github::judge(response(403, {}, R"({"message": "Resource not accessible"})"), now).kind ==
          Kind::Drop);
    v = github::judge(response(422, {}, R"({"message": "No commit found for SHA"})"), now);
    CHECK(v.kind == Kind::Drop);
    CHECK(v.why.find("422") != std::string::npos);
    CHECK(github::judge(response(401), now).kind == Kind::Drop);
}

namespace {

// A GitHub that answers by mode, recording the statuses it accepted.
struct FakeGithub {
    std::atomic<int> mode{0}; // 0 accept, 1 down (503), 2 rate limited (403 + Retry-After: 1)
    ci::test::Recorded<std::string> accepted; // "state context"
    ci::test::LocalHttpServer server{[this](const ci::test::ReceivedRequest& request) {
        const auto* auth = request.header("authorization");
        if (auth == nullptr || auth->find("token ") != 0) {
            return ci::test::Reply{401, {}, R"({"message": "Requires authentication"})"};
        }
        if (mode == 1) {
            return ci::test::Reply{503, {}, "down"};
        }
        if (mode == 2) {
            return ci::test::Reply{
                403, {{"Retry-After", "1"}}, R"({"message": "secondary rate limit"})"};
        }
        if (request.target.find("/statuses/" + sha) == std::string::npos) {
            return ci::test::Reply{422, {}, R"({"message": "No commit found for SHA"})"};
        }
        rapidjson::Document body;
        body.Parse(request.body.c_str());
        accepted.add(std::string(body["state"].GetString()) + " " + body["context"].GetString());
        return ci::test::Reply{201, {}, "{}"};
    }};

    std::vector<std::string> statuses() { return accepted.all(); }
    bool wait_for(std::size_t count) { return accepted.wait_for(count); }
};

std::unique_ptr<ci::store::Store> open_outbox(const std::filesystem::path& path) {
    auto store = ci::store::open_sqlite(path);
    REQUIRE_OK(store);
    return std::move(*store);
}

std::shared_ptr<ci::report::Reporter> start(const github::Settings& s,
                                            const std::filesystem::path& path,
                                            const ci::Clock& clock,
                                            ci::report::OpsHook ops = {}) {
    ci::http::ClientOptions options;
    options.retry.max_attempts = 1;
    auto reporter = github::start_reporter(
        s, open_outbox(path), ci::http::make_client(options), clock, std::move(ops));
    REQUIRE_OK(reporter);
    return *reporter;
}

// Log lines, captured.
struct CapturedLog {
    std::mutex mutex;
    std::string text;
    CapturedLog() {
        ci::log::set_sink([this](ci::log::Level, std::string_view line) {
            const std::lock_guard lock(mutex);
            text.append(line).append("\n");
        });
    }
    ~CapturedLog() { ci::log::set_sink({}); }
    std::string get() {
        const std::lock_guard lock(mutex);
        return text;
    }
};

// A state directory, a fake GitHub, and settings that point at it.
struct ReporterSetup {
    ci::test::TempDir dir;
    std::filesystem::path path = dir / "state.sqlite";
    FakeGithub fake;
    github::Settings s = with_api(settings(), fake.server.url());

    static github::Settings with_api(github::Settings s, std::string url) {
        s.api_url = std::move(url);
        return s;
    }
};

} // namespace

TEST_CASE("github reporter: in order and once, through an outage, a rate limit and a restart") {
    ReporterSetup setup;
    auto& [dir, path, fake, s] = setup;
    ci::SystemClock clock;
    CapturedLog log;
    auto events = open_outbox(path); // the master's connection

    fake.mode = 1; // down
    auto reporter = start(s, path, clock);
    ci::test::deliver(*reporter, *events, report(BuildEvent::Requested), clock.now());
    ci::test::deliver(*reporter, *events, report(BuildEvent::Started), clock.now());
    std::this_thread::sleep_for(300ms); // a few retries
    CHECK(fake.statuses().empty());
    fake.mode = 2; // rate limited: Retry-After
    std::this_thread::sleep_for(300ms);
    fake.mode = 0;
    REQUIRE(fake.wait_for(2));
    CHECK(fake.statuses() ==
          std::vector<std::string>{"pending libci/tests", "pending libci/tests"});

    // Queued while down, then the reporter stops (a master restart): the next one sends them.
    fake.mode = 1;
    ci::test::deliver(*reporter, *events, finished(BuildResult::Success), clock.now());
    ci::test::deliver(*reporter, *events, finished(BuildResult::Failure, "docs"), clock.now());
    std::this_thread::sleep_for(200ms);
    reporter->stop();
    fake.mode = 0;
    reporter = start(s, path, clock);
    REQUIRE(fake.wait_for(4));
    std::this_thread::sleep_for(200ms); // nothing more comes
    CHECK(fake.statuses() == std::vector<std::string>{"pending libci/tests",
                                                      "pending libci/tests",
                                                      "success libci/tests",
                                                      "failure libci/docs"});
    reporter->stop();
    // Sent once: a third start has nothing to send.
    CHECK(open_outbox(path)->queued_reports("github")->empty());

    const auto lines = log.get();
    CHECK(lines.find("github: the status ClusterHQ/flocker") != std::string::npos); // the outage
    CHECK(lines.find(s.token) == std::string::npos);
}

TEST_CASE("github reporter: a refused status is dropped; one unsent past give_up is logged") {
    ReporterSetup setup;
    auto& [dir, path, fake, s] = setup;
    ci::ManualClock clock(ci::WallTime(std::chrono::hours(400'000)));
    CapturedLog log;
    auto events = open_outbox(path); // the master's connection

    auto reporter = start(s, path, clock);
    auto unknown = report(BuildEvent::Requested);
    unknown.revision = std::string(40, 'f'); // 422: unknown sha
    ci::test::deliver(*reporter, *events, unknown, clock.now());
    ci::test::deliver(*reporter, *events, report(BuildEvent::Requested), clock.now());
    REQUIRE(fake.wait_for(1));
    CHECK(fake.statuses() == std::vector<std::string>{"pending libci/tests"});

    fake.mode = 1;
    s.give_up = 60s;
    reporter->stop();
    ci::test::Recorded<ci::report::OpsEvent> ops;
    reporter = start(s, path, clock, [&](const ci::report::OpsEvent& e) { ops.add(e); });
    ci::test::deliver(*reporter, *events, report(BuildEvent::Started), clock.now());
    std::this_thread::sleep_for(150ms);
    clock.advance(61s);
    for (int i = 0; i < 200 && log.get().find("gave up") == std::string::npos; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    reporter->stop();
    const auto lines = log.get();
    CHECK(lines.find("refused the status ClusterHQ/flocker ffffffffffff") != std::string::npos);
    CHECK(lines.find("422") != std::string::npos);
    CHECK(lines.find("gave up on the status ClusterHQ/flocker 0123456789ab libci/tests: pending "
                     "after 60 s") != std::string::npos);
    CHECK(lines.find(s.token) == std::string::npos);
    CHECK(open_outbox(path)->queued_reports("github")->empty());
    // The operators hear of it (Zulip's ops_stream).
    REQUIRE(ops.all().size() == 1);
    CHECK(ops.all()[0].kind == ci::report::OpsEvent::Kind::ReporterGaveUp);
    CHECK(ops.all()[0].source == "github");
    CHECK(ops.all()[0].text.find("gave up on the status") != std::string::npos);
}
