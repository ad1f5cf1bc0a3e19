// Placeholders of step values (pure): checking and filling in, escapes, hostile text.

#include <string>

#include <doctest/doctest.h>

#include <ci/config/placeholders.h>

using ci::config::check_placeholders;
using ci::config::fill_placeholders;
using ci::config::has_placeholders;

namespace {

ci::config::PlaceholderValues values() {
    ci::config::PlaceholderValues v;
    v.branch = "release/1.2";
    v.revision = "abc123";
    v.build_id = 77;
    v.properties = {{"version", "1.2.3"}, {"empty", ""}, {"evil", "$(rm -rf /); ${prop:version}"}};
    return v;
}

} // namespace

TEST_CASE("placeholders: each kind is filled in") {
    CHECK(fill_placeholders("v${prop:version}-${branch}@${revision}#${build_id}", values()) ==
          "v1.2.3-release/1.2@abc123#77");
    CHECK(fill_placeholders("${prop:empty}", values()) == "");
    CHECK(fill_placeholders("no placeholders $HOME $ $$ $}", values()) ==
          "no placeholders $HOME $ $$ $}");
}

TEST_CASE("placeholders: a value is never read again as a placeholder") {
    CHECK(fill_placeholders("${prop:evil}", values()) == "$(rm -rf /); ${prop:version}");
}

TEST_CASE("placeholders: $${ is a literal ${") {
    CHECK(fill_placeholders("$${prop:version}", values()) == "${prop:version}");
    // Read left to right: "$" then the escape.
    CHECK(fill_placeholders("$$${prop:version}", values()) == "$${prop:version}");
    CHECK_FALSE(has_placeholders("$${branch}"));
    CHECK(has_placeholders("x${branch}"));
    CHECK(has_placeholders("$${a} ${branch}"));
    CHECK(check_placeholders("$${not closed").has_value());
}

TEST_CASE("placeholders: malformed or unknown ones are refused, saying which") {
    for (const auto* text : {"${",
                             "a ${branch",
                             "${}",
                             "${foo}",
                             "${prop:}",
                             "${prop:a b}",
                             "${prop:a/b}",
                             "${PROP:x}",
                             "${ branch}"}) {
        INFO(text);
        const auto checked = check_placeholders(text);
        REQUIRE_FALSE(checked.has_value());
        CHECK(checked.error().code == ci::ErrorCode::InvalidArgument);
        CHECK_FALSE(fill_placeholders(text, values()).has_value());
    }
    CHECK(check_placeholders("${foo}").error().message.find("unknown placeholder") !=
          std::string::npos);
    CHECK(check_placeholders("${prop:" + std::string(65, 'a') + "}").has_value() == false);
    CHECK(check_placeholders("${prop:" + std::string(64, 'a') + "}").has_value());
    // A huge placeholder is not quoted whole in the message.
    const auto huge = check_placeholders("${" + std::string(100000, 'x') + "}");
    REQUIRE_FALSE(huge.has_value());
    CHECK(huge.error().message.size() < 400);
}

TEST_CASE("placeholders: a property nobody set fails, naming it") {
    const auto filled = fill_placeholders("x ${prop:missing} y", values());
    REQUIRE_FALSE(filled.has_value());
    CHECK(filled.error().message.find("no property \"missing\"") != std::string::npos);
}

TEST_CASE("placeholders: property names") {
    CHECK(ci::config::valid_property_name("report-expected-failures"));
    CHECK(ci::config::valid_property_name("a.b_C-9"));
    CHECK_FALSE(ci::config::valid_property_name(""));
    CHECK_FALSE(ci::config::valid_property_name("a b"));
    CHECK_FALSE(ci::config::valid_property_name("caf\xc3\xa9"));
    CHECK_FALSE(ci::config::valid_property_name(std::string(65, 'a')));
}
