// Wheel file names (PEP 427), project names (PEP 503) and versions (PEP 440).

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/wheelhouse/wheel.h>

#include "support/require_ok.h"

namespace {

ci::wheelhouse::Version version(std::string_view text) {
    auto parsed = ci::wheelhouse::parse_version(text);
    REQUIRE_MESSAGE(parsed.has_value(), std::string(text));
    return *parsed;
}

} // namespace

TEST_CASE("wheelhouse: versions normalize as PEP 440 spells them") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"1.0", "1.0"},
        {"v1.0", "1.0"},
        {"1.0a1", "1.0a1"},
        {"1.0-alpha.1", "1.0a1"},
        {"1.0.BETA2", "1.0b2"},
        {"1.0c1", "1.0rc1"},
        {"1.0pre", "1.0rc0"},
        {"1.0-preview-3", "1.0rc3"},
        {"1.0-1", "1.0.post1"},
        {"1.0.rev2", "1.0.post2"},
        {"1.0r", "1.0.post0"},
        {"1.0_post_3", "1.0.post3"},
        {"1.0-dev", "1.0.dev0"},
        {"1!2.0a1.post3.dev4+Ubuntu-1.2", "1!2.0a1.post3.dev4+ubuntu.1.2"},
        {"  2.0  ", "2.0"},
        {"1.2.3+doc1", "1.2.3+doc1"},
    };
    for (const auto& [text, normalized] : cases) {
        CAPTURE(text);
        CHECK(version(text).to_string() == normalized);
    }
    for (const char* bad : {"",
                            "1.0+",
                            "1.0+a..b",
                            "a1",
                            "1..0",
                            "1.0-",
                            "1.0ab",
                            "1.0 0",
                            "1.0.dev1.dev2",
                            "99999999999999999999999"}) {
        CAPTURE(bad);
        auto parsed = ci::wheelhouse::parse_version(bad);
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().message.find("not a PEP 440 version") != std::string::npos);
    }
}

TEST_CASE("wheelhouse: versions sort in PEP 440 order") {
    // The order PEP 440 gives in its examples ("Summary of permitted suffixes and relative
    // ordering"), plus epochs and local labels.
    const std::vector<std::string> ordered = {
        "1.0.dev456",    "1.0a1",         "1.0a2.dev456", "1.0a12.dev456",
        "1.0a12",        "1.0b1.dev456",  "1.0b2",        "1.0b2.post345.dev456",
        "1.0b2.post345", "1.0rc1.dev456", "1.0rc1",       "1.0",
        "1.0+abc.5",     "1.0+abc.7",     "1.0+5",        "1.0.post456.dev34",
        "1.0.post456",   "1.0.15",        "1.1.dev1",     "1!0.5",
    };
    std::vector<ci::wheelhouse::Version> versions;
    versions.reserve(ordered.size());
    for (const auto& text : ordered) {
        versions.push_back(version(text));
    }
    std::vector<ci::wheelhouse::Version> shuffled = versions;
    std::mt19937 random(42);
    for (int round = 0; round < 20; ++round) {
        std::ranges::shuffle(shuffled, random);
        std::ranges::sort(shuffled);
        for (std::size_t i = 0; i < versions.size(); ++i) {
            CHECK(shuffled[i].to_string() == versions[i].to_string());
        }
    }
    CHECK(version("1.0") == version("1.0.0"));
    CHECK(version("1.0") == version("v1.0.0.0"));
    CHECK(version("0") == version("0.0"));
    CHECK(version("1.0+local") > version("1.0"));
    CHECK(version("1.0.post1") > version("1.0+local"));
}

TEST_CASE("wheelhouse: wheel file names are parsed and checked (PEP 427)") {
    auto plain = ci::wheelhouse::parse_wheel_name("Flocker-1.0.0-py2-none-any.whl");
    REQUIRE_OK(plain);
    CHECK(plain->distribution == "Flocker");
    CHECK(plain->version.to_string() == "1.0.0");
    CHECK(plain->build.empty());
    CHECK(plain->python == "py2");
    CHECK(plain->abi == "none");
    CHECK(plain->platform == "any");

    auto built = ci::wheelhouse::parse_wheel_name(
        "zope.interface-5.4.0-1build2-cp311-cp311-manylinux_2_17_x86_64.whl");
    REQUIRE_OK(built);
    CHECK(built->distribution == "zope.interface");
    CHECK(built->build == "1build2");
    CHECK(built->platform == "manylinux_2_17_x86_64");

    auto local = ci::wheelhouse::parse_wheel_name("pkg-1.0+doc1-py3-none-any.whl");
    REQUIRE_OK(local);
    CHECK(local->version.to_string() == "1.0+doc1");

    const std::vector<std::pair<std::string, std::string>> bad = {
        {"pkg-1.0-py3-none-any.zip", "does not end in .whl"},
        {"pkg-1.0-py3-any.whl", "4 dash-separated parts"},
        {"pkg-1.0-b1-x-py3-none-any.whl", "7 dash-separated parts"},
        {"pkg-one-py3-none-any.whl", "not a PEP 440 version"},
        {"pkg-1.0-build-py3-none-any.whl", "build tag must start with a digit"},
        {"pk g-1.0-py3-none-any.whl", "distribution name"},
        {"pkg-1.0-py3-no ne-any.whl", "the tag 'no ne'"},
        {".whl", "does not end in .whl"},
    };
    for (const auto& [name, why] : bad) {
        CAPTURE(name);
        auto parsed = ci::wheelhouse::parse_wheel_name(name);
        REQUIRE_FALSE(parsed.has_value());
        CHECK(parsed.error().message.find(why) != std::string::npos);
    }
}

TEST_CASE("wheelhouse: project names normalize as PEP 503 says") {
    CHECK(ci::wheelhouse::normalize_project_name("Flocker") == "flocker");
    CHECK(ci::wheelhouse::normalize_project_name("zope.interface") == "zope-interface");
    CHECK(ci::wheelhouse::normalize_project_name("Foo__Bar-.baz") == "foo-bar-baz");
    CHECK(ci::wheelhouse::normalize_project_name("_x_") == "-x-");
}
