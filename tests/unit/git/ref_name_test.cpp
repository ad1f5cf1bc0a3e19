// git/ref_name.h: ref names from outside, checked by git's rules with the git CLI's own
// `git check-ref-format` as the oracle, and by length.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "git/ref_name.h"
#include "support/git_cli.h"
#include "support/temp_dir.h"

TEST_CASE("ref names: the same verdict as git check-ref-format") {
    const ci::test::TempDir dir("libci-ref-name");
    const std::vector<std::string> refs = {
        "refs/heads/master",
        "refs/heads/feature/x-1_2",
        "refs/tags/v1.2.3",
        "refs/heads/caf\xc3\xa9",
        "refs/heads/a.b",
        "refs/heads/a@b",
        "refs/heads/@",
        "refs/heads/a{b}",
        "master",
        "refs/heads/a..b",
        "refs/heads/.hidden",
        "refs/heads/x/.y",
        "refs/heads/x.lock",
        "refs/heads/x.lock/y",
        "refs/heads/has space",
        "refs/heads/bell\x07",
        "refs/heads/del\x7f",
        "refs/heads/tab\t",
        "refs/heads/a~1",
        "refs/heads/a^",
        "refs/heads/a:b",
        "refs/heads/a?",
        "refs/heads/a*",
        "refs/heads/a[b",
        "refs/heads/a\\b",
        "refs/heads/a@{1}",
        "@",
        "/refs/heads/a",
        "refs/heads/a/",
        "refs/heads//a",
        "refs/heads/a.",
        "refs/heads/a/.",
        "refs/heads/..",
        "",
    };
    for (const auto& ref : refs) {
        CAPTURE(ref);
        const bool git_accepts =
            ci::test::run_git(dir.path(), {"check-ref-format", ref}).status == 0;
        CHECK(ci::git::check_ref_format(ref).has_value() == git_accepts);
    }
}

TEST_CASE("ref names: at most 1024 bytes, 255 per component; the message says why, briefly") {
    CHECK(ci::git::check_ref_format("refs/heads/" + std::string(255, 'a')).has_value());
    auto component = ci::git::check_ref_format("refs/heads/" + std::string(256, 'a'));
    REQUIRE_FALSE(component.has_value());
    CHECK(component.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(component.error().message.find("a component longer than 255 bytes") != std::string::npos);

    std::string long_ref = "refs/heads";
    while (long_ref.size() + 101 <= 1024) {
        long_ref += "/" + std::string(100, 'b');
    }
    long_ref += "/" + std::string(1024 - long_ref.size() - 1, 'c');
    REQUIRE(long_ref.size() == 1024);
    CHECK(ci::git::check_ref_format(long_ref).has_value());
    auto too_long = ci::git::check_ref_format(long_ref + "c");
    REQUIRE_FALSE(too_long.has_value());
    CHECK(too_long.error().message.find("longer than 1024 bytes") != std::string::npos);

    // Issue 14: a 20 MiB ref was stored and its build retried forever. The message quotes 64
    // bytes of it, not 20 MiB.
    auto huge =
        ci::git::check_ref_format("refs/heads/" + std::string(std::size_t{20} * 1024 * 1024, 'x'));
    REQUIRE_FALSE(huge.has_value());
    CHECK(huge.error().message.size() < 200);
    CHECK(huge.error().message.find("(20971531 bytes)") != std::string::npos);

    // git takes any bytes; libci wants UTF-8 (the name goes out as JSON).
    CHECK(ci::git::check_ref_format("refs/heads/caf\xc3\xa9").has_value());
    auto latin1 = ci::git::check_ref_format("refs/heads/caf\xe9");
    REQUIRE_FALSE(latin1.has_value());
    CHECK(latin1.error().message.ends_with("is not valid UTF-8"));

    auto bell = ci::git::check_ref_format("refs/heads/bell\x07");
    REQUIRE_FALSE(bell.has_value());
    CHECK(bell.error().message ==
          "invalid ref \"refs/heads/bell\\x07\": it contains a control character");
}

TEST_CASE("commit ids: 1 to 64 hex digits") {
    CHECK(ci::git::is_commit_id(std::string(40, 'a')));
    CHECK(ci::git::is_commit_id(std::string(64, 'F')));
    CHECK(ci::git::is_commit_id("abc1"));
    CHECK_FALSE(ci::git::is_commit_id(""));
    CHECK_FALSE(ci::git::is_commit_id(std::string(65, 'a')));
    CHECK_FALSE(ci::git::is_commit_id("HEAD~1"));
    CHECK_FALSE(ci::git::is_commit_id("abcg"));
}
