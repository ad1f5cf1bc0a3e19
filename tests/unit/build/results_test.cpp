// Where uploaded results live (pure): the one-to-one escaping of builder and branch names, the
// results URL, and the checks of an upload's relative paths against hostile names.

#include <set>
#include <string>

#include <doctest/doctest.h>

#include <ci/build/results.h>

using ci::build::check_relative_path;
using ci::build::path_segment;

TEST_CASE("results: builder and branch names are one segment each, never colliding") {
    CHECK(path_segment("master") == "master");
    CHECK(path_segment("release/1.2") == "release%2F1.2");
    CHECK(path_segment("flocker/omnibus-ubuntu-14.04") == "flocker%2Fomnibus-ubuntu-14.04");
    CHECK(path_segment("..") == "%2E.");
    CHECK(path_segment(".hidden") == "%2Ehidden");
    CHECK(path_segment("a%2Fb") == "a%252Fb");
    CHECK(path_segment("") == "-");
    CHECK(path_segment("a b\n") == "a%20b%0A");
    // One-to-one over names that look alike (not "-", which git refuses as a branch name).
    std::set<std::string> seen;
    for (const char* name : {"a/b", "a%2Fb", "a_b", "a-b", "a.b", "a%b", "a b", "A/b", ""}) {
        CHECK(seen.insert(path_segment(name)).second);
    }
    CHECK(ci::build::results_path("flocker/docs", "release/1.2", 42) ==
          "flocker%2Fdocs/release%2F1.2/42");
}

TEST_CASE("results: the URL encodes each segment once more") {
    CHECK(ci::build::results_url("http://ci:8010/", "pkg/deb", "release/1.2", 7) ==
          "http://ci:8010/results/pkg%252Fdeb/release%252F1.2/7");
    CHECK(ci::build::results_url("https://ci.example", "docs", "master", 1) ==
          "https://ci.example/results/docs/master/1");
    CHECK(ci::build::results_url("http://ci", "cleanup", "", 3) == "http://ci/results/cleanup/-/3");
}

TEST_CASE("results: relative paths, and the hostile ones refused with the rule they break") {
    for (const char* good : {"a", "repo/deb", "a/b/c.txt", "..a", "a..", "日本/ファイル", "a b"}) {
        INFO(good);
        CHECK(check_relative_path(good).has_value());
    }
    const auto refused = [](std::string_view path, std::string_view why) {
        const auto checked = check_relative_path(path);
        REQUIRE_FALSE(checked.has_value());
        INFO(checked.error().message);
        CHECK(checked.error().message.find(why) != std::string::npos);
    };
    refused("", "is empty");
    refused("/etc/passwd", "absolute");
    refused("..", "\"..\" segment");
    refused("../x", "\"..\" segment");
    refused("a/../../x", "\"..\" segment");
    refused("a/..", "\"..\" segment");
    refused("./a", "\".\" segment");
    refused("a//b", "empty segment");
    refused("a/", "empty segment");
    refused("a\\..\\b", "backslash");
    refused(std::string("a\0b", 3), "control character");
    refused("a\nb", "control character");
    refused("a\x7f", "control character");
    refused("\xff\xfe", "UTF-8");
    refused("\xc0\xaf", "UTF-8");     // an overlong '/'
    refused("\xed\xa0\x80", "UTF-8"); // a surrogate
    refused(std::string(1025, 'a'), "1,024");
}
