// core/json.h: JSON from outside, parsed without recursion and with a depth limit; RapidJSON's
// assertions throw (core/rapidjson_assert.h) instead of aborting.

#include <string>

#include <doctest/doctest.h>

#include "core/json.h"

namespace json = ci::json;

namespace {

std::string nested(std::size_t levels, char open = '[', char close = ']') {
    return std::string(levels, open) + std::string(levels, close);
}

} // namespace

TEST_CASE("json: nesting up to the limit parses; one level more is refused where it starts") {
    CHECK(json::parse(nested(json::max_depth)).has_value());
    const auto refused = json::parse_document(nested(json::max_depth + 1));
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().offset == json::max_depth);
    CHECK(refused.error().reason == "nested deeper than 64 arrays and objects");
    auto error = json::parse(nested(json::max_depth + 1));
    REQUIRE_FALSE(error.has_value());
    CHECK(error.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(error.error().message == "nested deeper than 64 arrays and objects (byte 64)");
}

TEST_CASE("json: 1,000,000 levels are refused, not a stack overflow") {
    // Issue 14: the recursive parse of these crashed the master (SIGSEGV).
    const auto deep = nested(1000000);
    CHECK_FALSE(json::parse(deep).has_value());
    std::string in_place = deep;
    CHECK_FALSE(json::parse_in_place(in_place).has_value());
    const auto objects = "{\"a\":" + std::string(500000, '[') + "}";
    CHECK_FALSE(json::parse_object(objects).has_value());
}

TEST_CASE("json: brackets inside strings do not count; escaped quotes do not end a string") {
    const std::string text = R"({"a": ")" + std::string(1000, '[') + R"(\"[[[", "b": [[1]]})";
    CHECK_FALSE(json::too_deep(text).has_value());
    auto parsed = json::parse_object(text);
    REQUIRE(parsed.has_value());
    CHECK((*parsed)["b"][0][0].GetInt() == 1);
    // Mixed arrays and objects count alike.
    CHECK(json::too_deep(R"({"a": [{"b": [1]}]})", 3) == 13);
    CHECK_FALSE(json::too_deep(R"({"a": [{"b": 1}]})", 3).has_value());
}

TEST_CASE("json: other errors say RapidJSON's reason and where; objects only when asked") {
    auto bad = json::parse("[1, 2");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.find("(byte 5)") != std::string::npos);
    CHECK_FALSE(json::parse("1 2").has_value()); // one value, nothing after it
    CHECK(json::parse(" [1] \n").has_value());
    auto list = json::parse_object("[1]");
    REQUIRE_FALSE(list.has_value());
    CHECK(list.error().message == "not a JSON object");
    std::string text = R"({"a": "b\u00e9"})";
    auto in_place = json::parse_in_place(text);
    REQUIRE(in_place.has_value());
    CHECK(std::string((*in_place)["a"].GetString()) == "b\xc3\xa9");
}

TEST_CASE("json: string_member is absent, a string, or an error for another type") {
    auto document = json::parse_object(R"({"s": "x", "n": 1, "z": null})");
    REQUIRE(document.has_value());
    CHECK(json::string_member(*document, "s").value() == "x");
    CHECK_FALSE(json::string_member(*document, "missing").value().has_value());
    CHECK_FALSE(json::string_member(*document, "z").value().has_value());
    auto number = json::string_member(*document, "n");
    REQUIRE_FALSE(number.has_value());
    CHECK(number.error().message == "\"n\" is not a string");
    CHECK_FALSE(json::string_member((*document)["n"], "s").value().has_value());
}

TEST_CASE("json: RapidJSON's assertions throw instead of aborting, in every build type") {
    // Issue 14: a push whose "commits" was [1] aborted the master in HasMember()'s IsObject().
    auto document = json::parse("[1]");
    REQUIRE(document.has_value());
    const rapidjson::Value& one = (*document)[0];
    CHECK_THROWS_AS(static_cast<void>(one.HasMember("author")), json::AssertionFailed);
    CHECK_THROWS_AS(static_cast<void>(one.GetString()), json::AssertionFailed);
    CHECK_THROWS_WITH(static_cast<void>(one.GetArray()),
                      doctest::Contains("RapidJSON assertion failed: IsArray()"));
}
