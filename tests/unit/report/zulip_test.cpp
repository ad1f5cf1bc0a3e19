// Zulip messages: the pure parts (failed tests from a log, the summary of a push, which streams,
// the request, the verdicts), and the reporter against a local HTTP server that answers as Zulip
// does, with its failure details read from a real store, through an outage and a restart.

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include <ci/core/crypto.h>
#include <ci/http/client.h>
#include <ci/report/zulip.h>
#include <ci/store/store.h>

#include "support/local_http_server.h"
#include "support/recorded.h"
#include "support/require_ok.h"
#include "support/stored_report.h"
#include "support/temp_dir.h"

namespace zulip = ci::report::zulip;
using ci::BuildResult;
using ci::report::BuildEvent;
using ci::report::BuildReport;
using namespace std::chrono_literals;

namespace {

const std::string sha = "0123456789abcdef0123456789abcdef01234567";

const char* pytest_log =
    R"(============================= test session starts ==============================
collected 3 items

tests/test_a.py F.E                                                      [100%]

=========================== short test summary info ============================
FAILED tests/test_a.py::test_one - assert 1 == 2
ERROR tests/test_a.py::TestB::test_two[param-1] - RuntimeError: boom
FAILED tests/test_a.py::test_one - assert 1 == 2
==================== 1 failed, 1 passed, 1 error in 0.12s =====================
)";

const char* trial_log = R"(flocker.test.test_x
  Tests
    test_y ...                                                           [FAIL]
    test_z ...                                                          [ERROR]

===============================================================================
[FAIL]
Traceback (most recent call last):
  File "/src/flocker/test/test_x.py", line 12, in test_y
    self.assertEqual(1, 2)
twisted.trial.unittest.FailTest: 1 != 2

flocker.test.test_x.Tests.test_y
===============================================================================
[ERROR]
Traceback (most recent call last):
  File "/src/flocker/test/test_x.py", line 15, in test_z
    raise RuntimeError("this line is no test name")
builtins.RuntimeError: this line is no test name

flocker.test.test_x.Tests.test_z
flocker.test.test_x.Other.test_z
-------------------------------------------------------------------------------
Ran 3 tests in 0.020s

FAILED (failures=1, errors=2, successes=0)
)";

zulip::Settings settings() {
    zulip::Settings s;
    s.email = "ci-bot@example.org";
    s.api_key = "zulipkey0123456789abcdef";
    s.stream = "builds";
    s.critical_stream = "critical";
    s.ops_stream = "ops";
    s.failing_builders = {"flaky"};
    s.default_branches = {{"app", "master"}};
    s.first_retry = 50ms;
    s.max_retry = 200ms;
    s.log_wait = 2s;
    return s;
}

zulip::BuildLine line(std::int64_t request, std::string builder, BuildResult result) {
    zulip::BuildLine l;
    l.request_id = request;
    l.build_id = request + 100;
    l.builder = std::move(builder);
    l.result = result;
    l.duration = 75s;
    l.url = "http://ci.example.org/api/v1/builds/" + std::to_string(l.build_id);
    return l;
}

zulip::Push push(std::string branch, std::vector<zulip::BuildLine> builds) {
    return zulip::Push{builds.empty() ? 0 : builds.front().request_id,
                       "app",
                       std::move(branch),
                       sha,
                       std::move(builds)};
}

} // namespace

TEST_CASE("zulip: failed tests, by pytest's and trial's formats") {
    CHECK(zulip::failed_tests(pytest_log, 10) ==
          std::vector<std::string>{"tests/test_a.py::test_one",
                                   "tests/test_a.py::TestB::test_two[param-1]"});
    CHECK(zulip::failed_tests(trial_log, 10) ==
          std::vector<std::string>{"flocker.test.test_x.Tests.test_y",
                                   "flocker.test.test_x.Tests.test_z",
                                   "flocker.test.test_x.Other.test_z"});
    CHECK(zulip::failed_tests(trial_log, 2).size() == 2);
    CHECK(zulip::failed_tests("FAILED (failures=1)\nERROR: something\nall good\n", 10).empty());
    CHECK(zulip::failed_tests("", 10).empty());
    // Carriage returns (a log written on Windows, progress output) do not hide a name.
    CHECK(zulip::failed_tests("FAILED t.py::x\r\n", 10) == std::vector<std::string>{"t.py::x"});
}

TEST_CASE("zulip: a log's last lines") {
    CHECK(zulip::last_lines("a\nb\nc\nd\n", 2) == "c\nd");
    CHECK(zulip::last_lines("a\r\nb\r\n", 5) == "a\nb");
    CHECK(zulip::last_lines("", 5).empty());
    CHECK(zulip::last_lines("first line\n" + std::string(50, 'x') + "\nlast", 10, 20) == "last");
}

TEST_CASE("zulip: the summary of a push") {
    const auto s = settings();
    auto failed = line(2, "docs", BuildResult::Failure);
    failed.failed_step = "test";
    failed.log_tail = "running\nFAILED tests/test_a.py::test_one - assert 1 == 2";
    failed.failed_tests = {"tests/test_a.py::test_one"};
    const auto p = push("feature/x", {line(1, "tests", BuildResult::Success), failed});
    const auto text = zulip::summary(p, s);
    INFO(text);
    CHECK(text.starts_with("`feature/x` of app at `0123456789ab`: **1 of 2 builds failed**\n"));
    CHECK(text.find("* tests: success in 1m 15s ([build 101](http://ci.example.org/api/v1/builds/"
                    "101))\n") != std::string::npos);
    CHECK(text.find("* docs: **failure** in 1m 15s ([build 102](http://ci.example.org/api/v1/"
                    "builds/102)), step `test`\n") != std::string::npos);
    CHECK(text.find("**docs**, step `test`: failed tests `tests/test_a.py::test_one`\n```text\n"
                    "running\nFAILED tests/test_a.py::test_one - assert 1 == 2\n```\n") !=
          std::string::npos);
    CHECK(zulip::topic_for(p) == "app : feature/x");
    CHECK(text.find(", tests: ") == std::string::npos); // no step read test results

    SUBCASE("test counts on each builder's line") {
        auto counted = p;
        counted.builds[0].tests = ci::build::TestResults{118, 0, 2, 0, {}};
        counted.builds[1].tests = ci::build::TestResults{10, 1, 0, 0, {}};
        const auto t = zulip::summary(counted, s);
        INFO(t);
        CHECK(t.find("* tests: success in 1m 15s ([build 101](http://ci.example.org/api/v1/"
                     "builds/101)), tests: 118 passed, 0 failed, 2 skipped, 0 errors\n") !=
              std::string::npos);
        CHECK(t.find("builds/102)), tests: 10 passed, 1 failed, 0 skipped, 0 errors, step "
                     "`test`\n") != std::string::npos);
    }

    SUBCASE("all passed; an expected failure does not count") {
        const auto ok =
            push("feature/x",
                 {line(1, "tests", BuildResult::Success), line(2, "flaky", BuildResult::Failure)});
        const auto t = zulip::summary(ok, s);
        CHECK(t.find("2 builds passed") != std::string::npos);
        CHECK(t.find("* flaky: **failure** (expected: failing_builders)") != std::string::npos);
    }
    SUBCASE("a log with backticks gets a longer fence; a long topic is cut") {
        auto f = line(1, "docs", BuildResult::Failure);
        f.log_tail = "a ``` b";
        const auto t = zulip::summary(push("feature/x", {f}), s);
        CHECK(t.find("````text\na ``` b\n````") != std::string::npos);
        auto long_branch = push(std::string(100, 'b'), {f});
        CHECK(zulip::topic_for(long_branch).size() == zulip::max_topic);
    }
    SUBCASE("never longer than Zulip takes") {
        std::vector<zulip::BuildLine> many;
        for (int i = 1; i <= 40; ++i) {
            auto f = line(i, "b" + std::to_string(i), BuildResult::Failure);
            f.log_tail = std::string(4000, 'x');
            f.failed_tests.assign(30, std::string(80, 't'));
            many.push_back(f);
        }
        CHECK(zulip::summary(push("feature/x", many), s).size() <= zulip::max_content);
    }
}

TEST_CASE("zulip: which streams") {
    auto s = settings();
    const auto failing = [](std::string branch, std::string builder = "tests") {
        return push(std::move(branch), {line(1, std::move(builder), BuildResult::Failure)});
    };
    const auto streams = [&](const zulip::Push& p) {
        std::vector<std::string> out;
        for (const auto& m : zulip::messages_for(p, s)) {
            CHECK(m.topic == zulip::topic_for(p));
            out.push_back(m.stream);
        }
        return out;
    };
    using Streams = std::vector<std::string>;
    CHECK(streams(failing("master")) == Streams{"builds", "critical"});
    CHECK(streams(failing("feature/x")) == Streams{"builds"});
    CHECK(streams(failing("master", "flaky")) == Streams{"builds"}); // expected to fail
    CHECK(streams(push("master", {line(1, "tests", BuildResult::Success)})) == Streams{"builds"});
    CHECK(streams(push("master", {line(1, "tests", BuildResult::Exception)})) ==
          Streams{"builds", "critical"});
    s.critical_stream.reset();
    CHECK(streams(failing("master")) == Streams{"builds"});

    const ci::report::OpsEvent event{
        ci::report::OpsEvent::Kind::ReporterGaveUp, "github", "github: gave up on the status X"};
    const auto ops = zulip::ops_message(event, s);
    REQUIRE(ops);
    CHECK(*ops == zulip::Message{"ops",
                                 "libci",
                                 "**a reporter gave up**: github: gave up on the "
                                 "status X"});
    s.ops_stream.reset();
    CHECK_FALSE(zulip::ops_message(event, s));
}

TEST_CASE("zulip: the request, the verdicts, and what is stored") {
    auto s = settings();
    s.site = "https://chat.example.org/";
    const zulip::Message message{"builds", "app : feature/x", "a & b = c\nd"};
    auto request = zulip::message_request(message, s);
    REQUIRE_OK(request);
    CHECK(request->method == "POST");
    CHECK(request->url() == "https://chat.example.org/api/v1/messages");
    CHECK(*ci::http::find_header(request->headers, "authorization") ==
          "Basic " + ci::crypto::base64_encode(s.email + ":" + s.api_key));
    CHECK(*ci::http::find_header(request->headers, "content-type") ==
          "application/x-www-form-urlencoded");
    CHECK(request->body ==
          "type=stream&to=builds&topic=app%20%3A%20feature%2Fx&content=a%20%26%20b%20%3D%20c%0Ad");
    s.site = "chat.example.org";
    CHECK_FALSE(zulip::message_request(message, s));

    const auto response = [](int status, ci::http::Headers headers = {}) {
        return ci::http::Response{status, std::move(headers), "{}", 1};
    };
    using Kind = ci::report::Verdict::Kind;
    CHECK(zulip::judge(response(200)).kind == Kind::Sent);
    CHECK(zulip::judge(response(429, {{"Retry-After", "3"}})).wait == 3s);
    CHECK(zulip::judge(response(429)).wait == 60s);
    CHECK(zulip::judge(response(502)).kind == Kind::Retry);
    CHECK(zulip::judge(response(400)).kind == Kind::Drop); // no such stream
    CHECK(zulip::judge(response(401)).kind == Kind::Drop);

    CHECK(*zulip::parse_message(zulip::to_json(message)) == message);
    auto p = push("feature/x",
                  {line(1, "tests", BuildResult::Success), line(2, "docs", BuildResult::Failure)});
    p.builds[1].failed_tests = {"a::b"};
    p.builds[1].log_tail = "tail";
    p.builds.push_back(
        zulip::BuildLine{3, 0, "late", std::nullopt, 0s, "", "", "", {}, 9, std::nullopt});
    p.builds[0].tests = ci::build::TestResults{5, 0, 1, 0, {}};
    CHECK(*zulip::parse_push(zulip::to_json(p)) == p);
    // Rows stored before test counts were kept read without them; damaged counts are refused.
    auto without = zulip::to_json(p);
    const auto counts = without.find(",\"tests\":");
    REQUIRE(counts != std::string::npos);
    auto older = without;
    older.erase(counts, older.find('}', counts) - counts + 1);
    auto expected_older = p;
    expected_older.builds[0].tests.reset();
    CHECK(*zulip::parse_push(older) == expected_older);
    auto negative = without;
    negative.replace(negative.find("\"passed\":5"), 10, "\"passed\":-5");
    CHECK_FALSE(zulip::parse_push(negative));
    CHECK_FALSE(zulip::parse_push("{\"id\": 1}"));
    CHECK_FALSE(zulip::parse_message("[]"));

    // A build event as kept until the reporter handled it.
    BuildReport event;
    event.event = BuildEvent::Finished;
    event.request_id = 7;
    event.build_id = 9;
    event.builder = "docs";
    event.repository = "app";
    event.branch = "feature/\xc3\xa9";
    event.revision = std::string(40, 'a');
    event.result = BuildResult::Exception;
    event.url = "http://ci.example.org/api/v1/builds/9";
    event.properties = {{"report_expected_failures", "true"}, {"a\"b", "c\nd"}};
    event.at = ci::WallTime(std::chrono::milliseconds(1'700'000'000'123));
    CHECK(*zulip::parse_report(zulip::to_json(event)) == event);
    event.tests = ci::build::TestResults{3, 1, 0, 1, {"a.test_x", "a.test_\xc3\xa9"}};
    CHECK(*zulip::parse_report(zulip::to_json(event)) == event);
    event.event = BuildEvent::Requested;
    event.result.reset();
    CHECK(*zulip::parse_report(zulip::to_json(event)) == event);
    CHECK_FALSE(zulip::parse_report("{}"));
    auto renamed = zulip::to_json(event);
    renamed.replace(renamed.find("requested"), 9, "destroyed");
    CHECK_FALSE(zulip::parse_report(renamed));
    CHECK_FALSE(zulip::parse_report(std::string(100, '[')));
}

namespace {

// A Zulip that checks the bot's basic auth and the form, answering by mode.
struct FakeZulip {
    std::atomic<int> mode{0}; // 0 accept, 1 down (503)
    ci::test::Recorded<std::map<std::string, std::string>> accepted;
    std::string auth = "Basic " + ci::crypto::base64_encode("ci-bot@example.org:"
                                                            "zulipkey0123456789abcdef");
    ci::test::LocalHttpServer server{[this](const ci::test::ReceivedRequest& request) {
        const auto* given = request.header("authorization");
        if (given == nullptr || *given != auth) {
            return ci::test::Reply{401, {}, R"({"result":"error","code":"UNAUTHORIZED"})"};
        }
        if (mode == 1) {
            return ci::test::Reply{503, {}, "down"};
        }
        std::map<std::string, std::string> form;
        std::string_view body = request.body;
        while (!body.empty()) {
            const auto amp = body.find('&');
            const auto pair = body.substr(0, amp);
            const auto eq = pair.find('=');
            std::string value;
            ci::http::append_uri_decoded(value, pair.substr(eq + 1), true);
            form[std::string(pair.substr(0, eq))] = value;
            body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        }
        accepted.add(form);
        return ci::test::Reply{200, {}, R"({"result":"success","msg":"","id":1})"};
    }};

    std::vector<std::map<std::string, std::string>> messages() { return accepted.all(); }
    bool wait_for(std::size_t count) { return accepted.wait_for(count); }
};

std::unique_ptr<ci::store::Store> open_store(const std::filesystem::path& path) {
    auto store = ci::store::open_sqlite(path);
    REQUIRE_OK(store);
    return std::move(*store);
}

std::shared_ptr<ci::report::Reporter>
start(const zulip::Settings& s, const std::filesystem::path& path, const ci::Clock& clock) {
    ci::http::ClientOptions options;
    options.retry.max_attempts = 1;
    auto reporter =
        zulip::start_reporter(s, open_store(path), ci::http::make_client(options), clock);
    REQUIRE_OK(reporter);
    return *reporter;
}

// Two requests of one push (tests, docs) built and ended in `store`: docs fails at step 1 with
// a pytest log. Returns their request and build ids.
std::vector<std::pair<std::int64_t, std::int64_t>> run_builds(ci::store::Store& store,
                                                              const std::string& branch) {
    const auto t0 = ci::WallTime(std::chrono::seconds(1'700'000'000));
    std::vector<ci::sched::Action> actions;
    for (const auto* builder : {"tests", "docs"}) {
        ci::sched::RequestBuild request;
        request.scheduler = "branches";
        request.builder = builder;
        request.repository = "app";
        request.branch = branch;
        request.revision = sha;
        actions.emplace_back(request);
    }
    REQUIRE_OK(store.write({ci::store::Batch{{}, actions, {}}}, t0));
    std::vector<std::pair<std::int64_t, std::int64_t>> ids;
    for (const auto* builder : {"tests", "docs"}) {
        auto request = store.claim({builder}, "master");
        REQUIRE_OK(request);
        REQUIRE(*request);
        const auto id = (*request)->id;
        auto build = store.start_build(id, builder, "local/0", t0);
        REQUIRE_OK(build);
        const bool fails = std::string(builder) == "docs";
        const auto result = fails ? BuildResult::Failure : BuildResult::Success;
        REQUIRE_OK(
            store.save_step({*build, 0, "checkout", t0, t0, BuildResult::Success, 0, {}, {}, {}}));
        REQUIRE_OK(
            store.save_step({*build, 1, "test", t0, t0 + 42s, result, fails ? 1 : 0, {}, {}, {}}));
        REQUIRE_OK(store.append_log(*build, 1, 0, fails ? pytest_log : "ok\n"));
        auto record = store.build(*build);
        REQUIRE_OK(record);
        auto ended = **record;
        ended.finished = t0 + 42s;
        ended.result = result;
        REQUIRE_OK(store.update_build(ended));
        ids.emplace_back(id, *build);
    }
    return ids;
}

BuildReport event(BuildEvent kind,
                  std::pair<std::int64_t, std::int64_t> ids,
                  const std::string& builder,
                  const std::string& branch) {
    BuildReport r;
    r.event = kind;
    r.request_id = ids.first;
    r.build_id = kind == BuildEvent::Requested ? 0 : ids.second;
    r.builder = builder;
    r.repository = "app";
    r.branch = branch;
    r.revision = sha;
    if (kind != BuildEvent::Requested) {
        r.url = "http://ci.example.org/api/v1/builds/" + std::to_string(ids.second);
    }
    if (kind == BuildEvent::Finished) {
        r.result = builder == "docs" ? BuildResult::Failure : BuildResult::Success;
    }
    return r;
}

// A state directory, a fake Zulip, settings that point at it, and the store.
struct ReporterSetup {
    ci::test::TempDir dir;
    std::filesystem::path path = dir / "state.sqlite";
    FakeZulip fake;
    zulip::Settings s = with_site(settings(), fake.server.url());
    ci::SystemClock clock;
    std::unique_ptr<ci::store::Store> store = open_store(path);

    static zulip::Settings with_site(zulip::Settings s, std::string url) {
        s.site = std::move(url);
        return s;
    }
};

} // namespace

TEST_CASE("zulip reporter: one summary per push once its builds ended, through an outage and "
          "restarts") {
    ReporterSetup setup;
    auto& [dir, path, fake, s, clock, store] = setup;
    const auto ids = run_builds(*store, "master");

    auto reporter = start(s, path, clock);
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Requested, ids[0], "tests", "master"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Requested, ids[1], "docs", "master"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Started, ids[0], "tests", "master"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Started, ids[1], "docs", "master"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Finished, ids[0], "tests", "master"), clock.now());
    auto retried = event(BuildEvent::Finished, ids[1], "docs", "master");
    retried.result = BuildResult::Retry; // runs again: not an end
    ci::test::deliver(*reporter, *store, retried, clock.now());
    std::this_thread::sleep_for(300ms);
    CHECK(fake.messages().empty());

    // A restart in the middle: the push is remembered.
    reporter->stop();
    reporter = start(s, path, clock);
    fake.mode = 1; // down
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Finished, ids[1], "docs", "master"), clock.now());
    std::this_thread::sleep_for(300ms);
    CHECK(fake.messages().empty());
    // Queued while down, then a restart: sent once after it.
    reporter->stop();
    fake.mode = 0;
    reporter = start(s, path, clock);
    REQUIRE(fake.wait_for(2));
    std::this_thread::sleep_for(300ms); // nothing more comes
    reporter->stop();
    const auto messages = fake.messages();
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].at("type") == "stream");
    CHECK(messages[0].at("to") == "builds");
    CHECK(messages[1].at("to") == "critical"); // a failure on the default branch
    CHECK(messages[0].at("topic") == "app : master");
    const auto& content = messages[0].at("content");
    INFO(content);
    CHECK(content.find("**1 of 2 builds failed**") != std::string::npos);
    CHECK(content.find("* tests: success in 42s") != std::string::npos);
    CHECK(content.find("* docs: **failure** in 42s") != std::string::npos);
    CHECK(content.find("failed tests `tests/test_a.py::test_one`, "
                       "`tests/test_a.py::TestB::test_two[param-1]`") != std::string::npos);
    CHECK(content.find("1 failed, 1 passed, 1 error in 0.12s") != std::string::npos); // the tail
    CHECK(open_store(path)->queued_reports("zulip")->empty());
    CHECK(open_store(path)->queued_reports("zulip-pushes")->empty());
}

TEST_CASE("zulip reporter: a request collapsed into a newer push's ends with its build") {
    ReporterSetup setup;
    auto& [dir, path, fake, s, clock, store] = setup;
    // An older push of the same branch whose request of docs never runs (collapsed into the
    // newer one's): request 1, stored first.
    ci::sched::RequestBuild first;
    first.builder = "docs-old";
    REQUIRE_OK(store->write({ci::store::Batch{{}, {first}, {}}}, clock.now()));
    const auto ids = run_builds(*store, "feature/x");
    auto reporter = start(s, path, clock);
    auto older = event(BuildEvent::Requested, {1, 0}, "docs", "feature/x");
    older.revision = std::string(40, 'a');
    ci::test::deliver(*reporter, *store, older, clock.now());
    const std::array<std::pair<int, const char*>, 2> builds{{{0, "tests"}, {1, "docs"}}};
    for (const auto& [index, builder] : builds) {
        ci::test::deliver(*reporter,
                          *store,
                          event(BuildEvent::Requested, ids[index], builder, "feature/x"),
                          clock.now());
    }
    for (const auto& [index, builder] : builds) {
        ci::test::deliver(*reporter,
                          *store,
                          event(BuildEvent::Started, ids[index], builder, "feature/x"),
                          clock.now());
        ci::test::deliver(*reporter,
                          *store,
                          event(BuildEvent::Finished, ids[index], builder, "feature/x"),
                          clock.now());
    }
    REQUIRE(fake.wait_for(2));
    std::this_thread::sleep_for(200ms);
    reporter->stop();
    const auto messages = fake.messages();
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].at("content").find("`aaaaaaaaaaaa`") != std::string::npos);
    CHECK(messages[0].at("content").find("(built with a newer push)") != std::string::npos);
    CHECK(messages[1].at("content").find("`0123456789ab`") != std::string::npos);
}

TEST_CASE("zulip reporter: a request cancelled before it ran ends its line of the push") {
    ReporterSetup setup;
    auto& [dir, path, fake, s, clock, store] = setup;
    const auto ids = run_builds(*store, "feature/x");
    auto reporter = start(s, path, clock);
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Requested, ids[0], "tests", "feature/x"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Requested, ids[1], "docs", "feature/x"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Started, ids[0], "tests", "feature/x"), clock.now());
    ci::test::deliver(
        *reporter, *store, event(BuildEvent::Finished, ids[0], "tests", "feature/x"), clock.now());
    std::this_thread::sleep_for(200ms);
    CHECK(fake.messages().empty()); // docs has not ended
    auto cancelled = event(BuildEvent::Requested, ids[1], "docs", "feature/x");
    cancelled.event = BuildEvent::Cancelled;
    cancelled.result = BuildResult::Cancelled;
    ci::test::deliver(*reporter, *store, cancelled, clock.now());
    REQUIRE(fake.wait_for(1));
    std::this_thread::sleep_for(200ms); // nothing more comes
    reporter->stop();
    const auto messages = fake.messages();
    REQUIRE(messages.size() == 1);
    const auto& content = messages[0].at("content");
    INFO(content);
    CHECK(content.find("* tests: success in 42s") != std::string::npos);
    CHECK(content.find("* docs: **cancelled**\n") != std::string::npos);
    CHECK(open_store(path)->queued_reports("zulip-pushes")->empty());
}
