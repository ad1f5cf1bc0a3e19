// JUnit XML parsing (pure): the shapes test runners write, and hostile files: huge, deeply
// nested, invalid UTF-8, missing attributes, not JUnit at all.

#include <string>

#include <doctest/doctest.h>

#include <ci/build/test_results.h>

#include "core/utf8.h"

using ci::build::parse_junit;

TEST_CASE("junit: pytest's file: suites in suites, failures, errors, skips") {
    const auto parsed = parse_junit(R"(<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
    <testcase classname="tests.test_a" name="test_ok" time="0.01"/>
    <testcase classname="tests.test_a" name="test_ok2"><system-out>hi</system-out></testcase>
    <testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">x</failure></testcase>
    <testcase classname="tests.test_b" name="test_err"><error message="boom"/></testcase>
    <testcase classname="tests.test_b" name="test_skip"><skipped message="no"/></testcase>
    <testsuite name="inner"><testcase name="deeper"/></testsuite>
  </testsuite>
</testsuites>)");
    REQUIRE(parsed.has_value());
    CHECK(parsed->passed == 3);
    CHECK(parsed->failed == 1);
    CHECK(parsed->errors == 1);
    CHECK(parsed->skipped == 1);
    CHECK(parsed->total() == 6);
    CHECK(parsed->failed_tests ==
          std::vector<std::string>{"tests.test_a.test_bad", "tests.test_b.test_err"});
    CHECK(parsed->summary() == "3 passed, 1 failed, 1 skipped, 1 errors");
}

TEST_CASE("junit: counts come from the test cases, not from the suites' attributes") {
    const auto parsed =
        parse_junit(R"(<testsuite tests="1000" failures="999"><testcase name="a"/></testsuite>)");
    REQUIRE(parsed.has_value());
    CHECK(parsed->passed == 1);
    CHECK(parsed->failed == 0);
}

TEST_CASE("junit: missing attributes") {
    const auto parsed = parse_junit("<testsuite><testcase><failure/></testcase>"
                                    "<testcase classname='only.class'><error/></testcase>"
                                    "</testsuite>");
    REQUIRE(parsed.has_value());
    CHECK(parsed->failed_tests == std::vector<std::string>{"(unnamed)", "only.class.(unnamed)"});
}

TEST_CASE("junit: not JUnit, not XML, empty") {
    for (const auto* text : {"", "not xml", "<html><body/></html>", "<testsuite>", "<a></b>"}) {
        INFO(text);
        const auto parsed = parse_junit(text);
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(parsed.error().message.starts_with("JUnit XML: "));
    }
    CHECK(parse_junit("<html/>").error().message.find("<html>") != std::string::npos);
}

TEST_CASE("junit: deep nesting does not exhaust the stack") {
    std::string text = "<testsuites>";
    constexpr int depth = 200000;
    for (int i = 0; i < depth; ++i) {
        text += "<testsuite>";
    }
    text += "<testcase name='deep'><failure/></testcase>";
    for (int i = 0; i < depth; ++i) {
        text += "</testsuite>";
    }
    text += "</testsuites>";
    const auto parsed = parse_junit(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->failed == 1);
    CHECK(parsed->failed_tests == std::vector<std::string>{"deep"});
}

TEST_CASE("junit: many failures keep counting, names stop at the cap; long names are cut") {
    std::string text = "<testsuite>";
    for (int i = 0; i < 5000; ++i) {
        text += "<testcase name='t" + std::to_string(i) + "'><failure/></testcase>";
    }
    text += "<testcase classname='" + std::string(1000, 'c') + "' name='x'><error/></testcase>";
    text += "</testsuite>";
    const auto parsed = parse_junit(text);
    REQUIRE(parsed.has_value());
    CHECK(parsed->failed == 5000);
    CHECK(parsed->errors == 1);
    CHECK(parsed->failed_tests.size() == ci::build::max_failed_tests);

    const auto long_name = parse_junit("<testsuite><testcase classname='" + std::string(1000, 'c') +
                                       "'><error/></testcase></testsuite>");
    REQUIRE(long_name.has_value());
    CHECK(long_name->failed_tests.at(0).size() == ci::build::max_test_name);
}

TEST_CASE("junit: a file over the size cap is refused without being parsed") {
    const std::string huge(ci::build::max_junit_size + 1, ' ');
    const auto parsed = parse_junit(huge);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().message.find("more than") != std::string::npos);
}

TEST_CASE("junit: invalid UTF-8 in names comes out valid") {
    const auto parsed = parse_junit("<testsuite><testcase classname='a\xff\xfe' name='b\xc3'>"
                                    "<failure/></testcase></testsuite>");
    REQUIRE(parsed.has_value());
    REQUIRE(parsed->failed_tests.size() == 1);
    CHECK_FALSE(ci::first_invalid_utf8(parsed->failed_tests[0]).has_value());
    CHECK(parsed->failed_tests[0].starts_with("a"));
}

TEST_CASE("junit: entities do not expand beyond the predefined ones") {
    const auto parsed = parse_junit(R"(<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuite><testcase name="&lol2;&amp;"><failure/></testcase></testsuite>)");
    REQUIRE(parsed.has_value());
    CHECK(parsed->failed == 1);
    CHECK(parsed->failed_tests.at(0).size() < 40);
}

TEST_CASE("junit: add sums counts and keeps names up to the cap") {
    ci::build::TestResults a{1, 2, 3, 4, {"x"}};
    const ci::build::TestResults b{10, 20, 30, 40, {"y", "z"}};
    a.add(b);
    CHECK(a == ci::build::TestResults{11, 22, 33, 44, {"x", "y", "z"}});
}
