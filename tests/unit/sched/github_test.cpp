// GitHub push payloads (shaped as GitHub sends them, trimmed) as scheduler events.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>

#include <doctest/doctest.h>

#include <ci/config/load.h>
#include <ci/sched/github.h>

#include "support/require_ok.h"

namespace {

const char* branch_push = R"({
  "ref": "refs/heads/feature/fast",
  "before": "1111111111111111111111111111111111111111",
  "after": "3333333333333333333333333333333333333333",
  "created": false, "deleted": false, "forced": false,
  "repository": {"full_name": "ClusterHQ/flocker",
                 "clone_url": "https://github.com/ClusterHQ/flocker.git",
                 "ssh_url": "git@github.com:ClusterHQ/flocker.git"},
  "commits": [
    {"id": "2222222222222222222222222222222222222222", "message": "Add the thing",
     "timestamp": "2026-11-24T10:00:00+01:00",
     "author": {"name": "Alice", "email": "alice@example.org"},
     "added": ["src/thing.py"], "removed": [], "modified": ["setup.py"]},
    {"id": "3333333333333333333333333333333333333333", "message": "Document it",
     "timestamp": "2026-11-24T09:30:00Z",
     "author": {"name": "Bob", "email": "bob@example.org"},
     "added": [], "removed": ["docs/old.rst"], "modified": ["docs/index.rst"]}
  ],
  "head_commit": {"id": "3333333333333333333333333333333333333333"}
})";

} // namespace

TEST_CASE("github: a branch push becomes a Push with every commit and its files") {
    auto events = ci::sched::parse_github_push(branch_push, "flocker");
    REQUIRE_OK(events);
    REQUIRE(events->size() == 1);
    const auto& push = std::get<ci::sched::Push>((*events)[0]);
    REQUIRE(push.changes.size() == 2);
    const auto& first = push.changes[0];
    CHECK(first.repository == "flocker");
    CHECK(first.branch == "feature/fast");
    CHECK_FALSE(first.is_tag);
    CHECK(first.revision == "2222222222222222222222222222222222222222");
    CHECK(first.author == "Alice <alice@example.org>");
    CHECK(first.comments == "Add the thing");
    CHECK(*first.files == std::vector<std::string>{"src/thing.py", "setup.py"});
    // 10:00 at +01:00 is 09:00 UTC.
    CHECK(first.when == std::chrono::system_clock::from_time_t(1795510800));
    CHECK(*push.changes[1].files == std::vector<std::string>{"docs/index.rst", "docs/old.rst"});
}

TEST_CASE("github: tag pushes, deletions and other refs") {
    auto tag = ci::sched::parse_github_push(R"({"ref": "refs/tags/1.2.3", "after": "abc",
        "deleted": false, "commits": [],
        "head_commit": {"id": "abc", "message": "Release", "timestamp": "2026-11-24T10:00:00Z"}})",
                                            "flocker");
    REQUIRE_OK(tag);
    const auto& push = std::get<ci::sched::Push>((*tag)[0]);
    REQUIRE(push.changes.size() == 1);
    CHECK(push.changes[0].is_tag);
    CHECK(push.changes[0].branch == "1.2.3");
    CHECK(push.changes[0].revision == "abc");

    auto deleted = ci::sched::parse_github_push(
        R"({"ref": "refs/heads/old", "after": "0000000000000000000000000000000000000000",
            "deleted": true, "commits": [], "head_commit": null})",
        "flocker");
    REQUIRE_OK(deleted);
    CHECK(std::get<ci::sched::RefDeleted>((*deleted)[0]).branch == "old");

    auto other = ci::sched::parse_github_push(R"({"ref": "refs/pull/1/head", "after": "a"})", "r");
    REQUIRE_OK(other);
    CHECK(other->empty());

    CHECK_FALSE(ci::sched::parse_github_push("{", "r").has_value());
    auto no_ref = ci::sched::parse_github_push(R"({"zen": "Keep it logically awesome."})", "r");
    REQUIRE_FALSE(no_ref.has_value());
    CHECK(no_ref.error().message == "GitHub push payload: no \"ref\"");
}

TEST_CASE("github: a value of an unexpected type is a 400 naming it, never an assertion") {
    // Issue 14: "commits": [1] ended the master in RapidJSON's IsObject() assertion.
    const auto error_of = [](const std::string& payload) {
        auto events = ci::sched::parse_github_push(payload, "r");
        REQUIRE_FALSE(events.has_value());
        CHECK(events.error().code == ci::ErrorCode::InvalidArgument);
        return events.error().message;
    };
    const std::string ref = R"("ref": "refs/heads/x", "after": "abc", )";
    CHECK(error_of("{" + ref + R"("commits": [1]})") ==
          "GitHub push payload: commits[0] is not an object");
    CHECK(error_of("{" + ref + R"("commits": ["x"]})") ==
          "GitHub push payload: commits[0] is not an object");
    CHECK(error_of("{" + ref + R"("commits": {"id": "abc"}})") ==
          "GitHub push payload: commits is not a list");
    CHECK(error_of("{" + ref + R"("commits": [{"id": "abc", "author": 1}]})") ==
          "GitHub push payload: commits[0].author is not an object");
    CHECK(error_of("{" + ref + R"("commits": [{"id": "abc", "author": {"name": []}}]})") ==
          "GitHub push payload: commits[0].author.name is not a string");
    CHECK(error_of("{" + ref + R"("commits": [{"id": "abc", "message": {}}]})") ==
          "GitHub push payload: commits[0].message is not a string");
    CHECK(error_of("{" + ref + R"("commits": [{"id": "abc", "added": 2}]})") ==
          "GitHub push payload: commits[0].added is not a list");
    CHECK(error_of("{" + ref + R"("commits": [{"id": "abc", "added": [2]}]})") ==
          "GitHub push payload: commits[0].added holds a value that is not a string");
    CHECK(error_of("{" + ref + R"("commits": [], "head_commit": 5})") ==
          "GitHub push payload: head_commit is not an object");
    CHECK(error_of("{" + ref + R"("deleted": "yes"})") ==
          "GitHub push payload: deleted is not a boolean");
    CHECK(error_of(R"({"ref": 7})") == "GitHub push payload: ref is not a string");
    CHECK(error_of("[1]") == "GitHub push payload: not a JSON object");
    // Null reads as absent, as GitHub sends it (head_commit of a deletion, a missing e-mail).
    auto nulls = ci::sched::parse_github_push(
        "{" + ref + R"("commits": [{"id": "abc", "author": {"name": "A", "email": null}}],
                        "head_commit": null})",
        "r");
    REQUIRE_OK(nulls);
    CHECK(std::get<ci::sched::Push>((*nulls)[0]).changes[0].author == "A");

    auto config = ci::config::parse_config("repositories: {r: {url: \"https://h/o/r\"}}", "t.yml");
    REQUIRE(config.ok());
    auto repository = ci::sched::parse_github_webhook(
        R"({"ref": "refs/heads/x", "repository": []})", *config.config);
    REQUIRE_FALSE(repository.has_value());
    CHECK(repository.error().message == "GitHub push payload: repository is not an object");
    auto url = ci::sched::parse_github_webhook(
        R"({"ref": "refs/heads/x", "repository": {"clone_url": 1}})", *config.config);
    REQUIRE_FALSE(url.has_value());
    CHECK(url.error().message == "GitHub push payload: repository.clone_url is not a string");
}

TEST_CASE("github: refs git would refuse and ids that are no commit ids are a 400") {
    // Issue 14: a 20 MiB ref was stored; its build spec exceeded the worker's line limit and the
    // build was sent again every 3 s, forever.
    const auto error_of = [](const std::string& ref, const std::string& after = "abc") {
        auto events = ci::sched::parse_github_push(
            R"({"ref": ")" + ref + R"(", "after": ")" + after + R"(", "commits": []})", "r");
        REQUIRE_FALSE(events.has_value());
        CHECK(events.error().code == ci::ErrorCode::InvalidArgument);
        return events.error().message;
    };
    const auto huge = error_of("refs/heads/" + std::string(std::size_t{20} * 1024 * 1024, 'a'));
    CHECK(huge.find("is longer than 1024 bytes") != std::string::npos);
    CHECK(huge.size() < 200);
    CHECK(error_of("refs/heads/a..b") ==
          R"(GitHub push payload: invalid ref "refs/heads/a..b": it contains "..")");
    CHECK(error_of("refs/heads/x.lock").find("\".lock\"") != std::string::npos);
    CHECK(error_of("refs/tags/a b").find("a space") != std::string::npos);
    CHECK(error_of("refs/pull/1/head:x").find("~ ^ :") != std::string::npos);
    CHECK(error_of("refs/heads/ok", std::string(100, 'a')) ==
          "GitHub push payload: after is not a commit id");
    auto id = ci::sched::parse_github_push(
        R"({"ref": "refs/heads/ok", "commits": [{"id": "HEAD~1"}]})", "r");
    REQUIRE_FALSE(id.has_value());
    CHECK(id.error().message == "GitHub push payload: commits[0].id is not a commit id");
}

TEST_CASE("github: text that is not UTF-8 is repaired (U+FFFD); a ref that is not is refused") {
    // Issue 14: invalid UTF-8 was stored and served raw: /api/v1/changes was no valid JSON text
    // for a strict decoder.
    const std::string fffd = "\xef\xbf\xbd";
    // Raw bytes (the escapes of ordinary literals), and a lone surrogate as a JSON escape.
    const std::string payload =
        std::string(R"({"ref": "refs/heads/x", "commits": [{"id": "abc",)") +
        "\"message\": \"bad \xff\xfe " + R"(\udc80)" + " \xc3(\", " +
        "\"author\": {\"name\": \"D\xe9v\", \"email\": \"d@e\"}, " + "\"added\": [\"f\xff\"]}]}";
    auto events = ci::sched::parse_github_push(payload, "r");
    REQUIRE_OK(events);
    const auto& change = std::get<ci::sched::Push>((*events)[0]).changes[0];
    CHECK(change.comments == "bad " + fffd + fffd + " " + fffd + fffd + fffd + " " + fffd + "(");
    CHECK(change.author == "D" + fffd + "v <d@e>");
    CHECK(*change.files == std::vector<std::string>{"f" + fffd});

    auto ref =
        ci::sched::parse_github_push("{\"ref\": \"refs/heads/caf\xe9\", \"after\": \"abc\"}", "r");
    REQUIRE_FALSE(ref.has_value());
    CHECK(ref.error().message.find("is not valid UTF-8") != std::string::npos);
}

TEST_CASE("github: a payload nested far too deep is refused, not a stack overflow") {
    // Issue 14: 300,000 levels crashed the master (SIGSEGV) in the recursive parse.
    const std::string deep = std::string(300000, '[') + std::string(300000, ']');
    auto events = ci::sched::parse_github_push(deep, "r");
    REQUIRE_FALSE(events.has_value());
    CHECK(events.error().message.find("nested deeper than 64") != std::string::npos);
    CHECK_FALSE(ci::sched::github_repository_urls(R"({"repository": )" + deep + "}").has_value());
}

TEST_CASE("github: the payload's repository is matched to the config's by URL") {
    auto checked = ci::config::parse_config(R"(
repositories:
  flocker: {url: "git@github.com:ClusterHQ/flocker.git"}
  other: {url: "https://github.com/o/other"}
)",
                                            "t.yml");
    REQUIRE(checked.ok());
    auto urls = ci::sched::github_repository_urls(branch_push);
    REQUIRE_OK(urls);
    CHECK(ci::sched::match_repository(*checked.config, *urls) == "flocker");
    CHECK(ci::sched::match_repository(*checked.config, {"https://GitHub.com/o/other/"}) == "other");
    CHECK(ci::sched::match_repository(*checked.config, {"https://github.com/o/unknown"}).empty());

    // The webhook's one-parse path gives the same as the three steps.
    auto webhook = ci::sched::parse_github_webhook(branch_push, *checked.config);
    REQUIRE_OK(webhook);
    CHECK(webhook->urls == *urls);
    CHECK(webhook->repository == "flocker");
    auto events = ci::sched::parse_github_push(branch_push, "flocker");
    REQUIRE_OK(events);
    REQUIRE(webhook->events.size() == 1);
    CHECK(std::get<ci::sched::Push>(webhook->events[0]).changes ==
          std::get<ci::sched::Push>((*events)[0]).changes);
    auto unknown = ci::sched::parse_github_webhook(
        R"({"ref": "refs/heads/x", "repository": {"clone_url": "https://github.com/o/unknown"}})",
        *checked.config);
    REQUIRE_OK(unknown);
    CHECK(unknown->repository.empty());
    CHECK(unknown->events.empty());
    auto broken = ci::sched::parse_github_webhook("{not json", *checked.config);
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error().code == ci::ErrorCode::InvalidArgument);
    auto no_ref = ci::sched::parse_github_webhook(
        R"({"repository": {"clone_url": "https://github.com/o/other"}})", *checked.config);
    REQUIRE_FALSE(no_ref.has_value());
    CHECK(no_ref.error().message.find("ref") != std::string::npos);
}

TEST_CASE("github: webhook signatures are checked, and every bad one is refused") {
    // GitHub's own example ("Validating webhook deliveries").
    const std::string secret = "It's a Secret to Everybody";
    const std::string body = "Hello, World!";
    const std::string good =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    CHECK(ci::sched::verify_github_signature(secret, body, good).has_value());
    std::string upper = good;
    std::transform(upper.begin() + 7, upper.end(), upper.begin() + 7, [](char c) {
        return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    });
    CHECK(ci::sched::verify_github_signature(secret, body, upper).has_value());

    const auto refused =
        [&](std::string_view s, std::string_view b, std::string_view header, std::string_view why) {
            CAPTURE(header);
            auto status = ci::sched::verify_github_signature(s, b, header);
            REQUIRE_FALSE(status.has_value());
            CHECK(status.error().code == ci::ErrorCode::PermissionDenied);
            CHECK(status.error().message.find(why) != std::string::npos);
            CHECK(status.error().message.find(secret) == std::string::npos);
        };
    refused(secret, "Hello, World?", good, "does not match");
    refused("another secret", body, good, "does not match");
    refused(secret, body, "", "no X-Hub-Signature-256");
    refused(secret, body, "sha1=757107ea0eb2509fc211221cce984b8a37570b6d", "does not start");
    refused(secret, body, good.substr(0, good.size() - 1), "64 hex digits");
    refused(secret, body, good.substr(0, good.size() - 1) + "g", "64 hex digits");
    refused(secret, body, good + "00", "64 hex digits");
}

TEST_CASE("github: a timestamp out of range or with a bad offset is unknown, not an overflow") {
    // Found by the webhook fuzz target: the year 1013 overflowed a nanosecond time_point (UB).
    const auto when_of = [](const std::string& timestamp) {
        std::string payload = branch_push;
        const std::string known = "2026-11-24T10:00:00+01:00";
        payload.replace(payload.find(known), known.size(), timestamp);
        auto events = ci::sched::parse_github_push(payload, "flocker");
        REQUIRE_OK(events);
        return std::get<ci::sched::Push>((*events)[0]).changes[0].when;
    };
    const std::chrono::system_clock::time_point unknown{};
    CHECK(when_of("1013-01-01T00:00:00Z") == unknown);
    CHECK(when_of("99999-01-01T00:00:00Z") == unknown);
    CHECK(when_of("1899-12-31T23:59:59Z") == unknown);
    // An offset that is not two digits, a colon and two digits is ignored.
    CHECK(when_of("2026-11-24T09:00:00+99999999999999999999") ==
          std::chrono::system_clock::from_time_t(1795510800));
    CHECK(when_of("2026-11-24T10:00:00+01:00") ==
          std::chrono::system_clock::from_time_t(1795510800));
}
