// The home page's grid (ordering, grouping, filters), the badge SVG, and the home page rendered
// from a grid: pure functions, no store or clock.

#include <string>

#include <doctest/doctest.h>

#include "master/ui.h"
#include "web/badge.h"
#include "web/grid.h"
#include "web/page.h"

namespace {

using namespace std::chrono_literals;
const auto t0 = std::chrono::system_clock::from_time_t(1795510800);

ci::store::BranchBuild build(std::int64_t id,
                             std::string builder,
                             std::string branch,
                             ci::WallTime started,
                             std::optional<ci::BuildResult> result = ci::BuildResult::Success) {
    ci::store::BranchBuild out;
    out.build.id = id;
    out.build.builder = std::move(builder);
    out.build.started = started;
    if (result) {
        out.build.finished = started + 1min;
        out.build.result = result;
    }
    out.repository = "app";
    out.branch = std::move(branch);
    return out;
}

ci::web::GridInput input() {
    ci::web::GridInput in;
    in.builders = {{"lint", "app"}, {"tests", "app"}, {"docs", "site"}, {"flaky", "app"}};
    in.failing = {"flaky"};
    in.default_branches = {{"app", "master"}, {"site", "main"}};
    in.builds = {
        build(1, "tests", "old-feature", t0),
        build(2, "tests", "master", t0 + 1min),
        build(3, "lint", "new-feature", t0 + 5min, ci::BuildResult::Failure),
        build(4, "tests", "new-feature", t0 + 4min, std::nullopt), // running
        build(5, "flaky", "master", t0 + 2min, ci::BuildResult::Failure),
        build(6, "gone", "gone-branch", t0 + 9min), // a builder no longer in the config
        build(7, "docs", "main", t0),
    };
    return in;
}

} // namespace

TEST_CASE("web grid: default branches first, then branches by last activity; rows by name") {
    const auto grid = ci::web::make_grid(input(), {});
    CHECK(grid.branches ==
          std::vector<std::string>{"main", "master", "new-feature", "old-feature"});
    REQUIRE(grid.rows.size() == 3);
    CHECK(grid.rows[0].builder == "docs");
    CHECK(grid.rows[1].builder == "lint");
    CHECK(grid.rows[2].builder == "tests");
    const auto& tests = grid.rows[2].cells;
    REQUIRE(tests.size() == 4);
    CHECK_FALSE(tests[0].has_value());
    CHECK(tests[1]->build == 2);
    CHECK(tests[2]->result == "running");
    CHECK(tests[3]->result == "success");
    CHECK(grid.rows[1].cells[2]->result == "failure");
    // flaky (failing_builders) is a section of its own, never among the rows.
    REQUIRE(grid.failing.size() == 1);
    CHECK(grid.failing[0].builder == "flaky");
    CHECK(grid.failing[0].failing);
    CHECK(grid.failing[0].cells[1]->result == "failure");
}

TEST_CASE("web grid: filters by repository and result; a column cap keeps the most active") {
    SUBCASE("repository") {
        ci::web::GridFilter filter;
        filter.repository = "site";
        const auto grid = ci::web::make_grid(input(), filter);
        CHECK(grid.branches == std::vector<std::string>{"main"});
        REQUIRE(grid.rows.size() == 1);
        CHECK(grid.rows[0].builder == "docs");
        CHECK(grid.failing.empty());
    }
    SUBCASE("result") {
        ci::web::GridFilter filter;
        filter.result = "failure";
        const auto grid = ci::web::make_grid(input(), filter);
        CHECK(grid.branches == std::vector<std::string>{"master", "new-feature"});
        REQUIRE(grid.rows.size() == 1);
        CHECK(grid.rows[0].builder == "lint");
        CHECK_FALSE(grid.rows[0].cells[0].has_value());
        CHECK(grid.rows[0].cells[1]->build == 3);
        REQUIRE(grid.failing.size() == 1);
    }
    SUBCASE("a result nobody has") {
        ci::web::GridFilter filter;
        filter.result = "<script>";
        const auto grid = ci::web::make_grid(input(), filter);
        CHECK(grid.branches.empty());
        CHECK(grid.rows.empty());
        CHECK(grid.failing.empty());
    }
    SUBCASE("cap") {
        ci::web::GridFilter filter;
        filter.max_branches = 3;
        const auto grid = ci::web::make_grid(input(), filter);
        CHECK(grid.branches == std::vector<std::string>{"main", "master", "new-feature"});
        CHECK(grid.hidden_branches == 1);
        CHECK(grid.rows[2].cells.size() == 3);
    }
}

TEST_CASE("web grid: the default branches are columns before their first build") {
    auto in = input();
    in.builds.clear();
    auto grid = ci::web::make_grid(in, {});
    CHECK(grid.branches == std::vector<std::string>{"main", "master"});
    REQUIRE(grid.rows.size() == 3);
    CHECK(grid.rows[2].builder == "tests");
    REQUIRE(grid.rows[2].cells.size() == 2);
    CHECK_FALSE(grid.rows[2].cells[0].has_value());
    CHECK_FALSE(grid.rows[2].cells[1].has_value());
    // Only the shown repository's; none under a result filter (no cell could match there).
    ci::web::GridFilter filter;
    filter.repository = "app";
    CHECK(ci::web::make_grid(in, filter).branches == std::vector<std::string>{"master"});
    filter = {};
    filter.result = "success";
    CHECK(ci::web::make_grid(in, filter).branches.empty());
    // A build on another branch only: master stays, first.
    in.builds = {build(1, "tests", "feature", t0)};
    grid = ci::web::make_grid(in, {});
    CHECK(grid.branches == std::vector<std::string>{"main", "master", "feature"});
}

TEST_CASE("web grid: ages and durations") {
    CHECK(ci::web::age_text(t0, t0 + 30s) == "<1m");
    CHECK(ci::web::age_text(t0, t0 + 12min) == "12m");
    CHECK(ci::web::age_text(t0, t0 + 3h + 5min) == "3h");
    CHECK(ci::web::age_text(t0, t0 + 50h) == "2d");
    CHECK(ci::web::age_text(t0 + 1h, t0) == "<1m"); // a clock step back
    CHECK(ci::web::duration_text(12s) == "12s");
    CHECK(ci::web::duration_text(65s) == "1m05s");
    CHECK(ci::web::duration_text(2h + 3min + 4s) == "2h03m");
}

TEST_CASE("web badge: the result's colour; texts escaped; well-formed SVG") {
    const auto ok = ci::web::badge_svg("tests", "success");
    CHECK(ok.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    CHECK(ok.find("#1a7f37") != std::string::npos);
    CHECK(ok.find(">success</text>") != std::string::npos);
    CHECK(ci::web::badge_svg("tests", "failure").find("#cf222e") != std::string::npos);
    const auto hostile = ci::web::badge_svg("<script>a&b</script>", "unknown");
    CHECK(hostile.find("<script>") == std::string::npos);
    CHECK(hostile.find("&lt;script&gt;a&amp;b&lt;/script&gt;") != std::string::npos);
    CHECK(hostile.find("#6e7781") != std::string::npos);
    const auto broken = ci::web::badge_svg("a\x01"
                                           "b\xff",
                                           "x");
    CHECK(broken.find("a?b\xef\xbf\xbd") != std::string::npos); // U+FFFD for the bad byte
    CHECK(broken.find('\x01') == std::string::npos);
    // Wider text, wider badge (a UTF-8 character counts once).
    CHECK(ci::web::badge_svg("a-much-longer-builder-name", "success").size() > ok.size());
    const auto width = [](const std::string& svg) {
        const auto at = svg.find("width=\"") + 7;
        return svg.substr(at, svg.find('"', at) - at);
    };
    CHECK(width(ci::web::badge_svg("\xc3\xa9", "x")) == width(ci::web::badge_svg("e", "x")));
}

TEST_CASE(
    "web home: the grid rendered, a script branch escaped, a force form only when logged in") {
    auto in = input();
    in.builds.push_back(build(8, "tests", "<script>alert(1)</script>", t0 + 8min));
    // A right-to-left override (U+202E) in a branch name stays inside its <bdi>.
    // (Built from bytes: a literal with one would be a misleading source line.)
    const std::string rlo = {'\xe2', '\x80', '\xae'}; // U+202E
    const std::string rli = {'\xe2', '\x81', '\xa7'}; // U+2067
    in.builds.push_back(build(9, "tests", "rtl-" + rlo + "gnp.exe", t0 + 9min));
    ci::config::Config config;
    config.builders["tests"].repository = "app";
    config.failing_builders = {"flaky"};
    const auto grid = ci::web::make_grid(in, {});
    ci::web::Frame frame;
    frame.title = "Home";
    auto page = ci::web::render_page(
        frame, "home.mustache", ci::master::home_data(config, grid, {}, t0 + 10min));
    REQUIRE(page.has_value());
    CHECK(page->find("<th><bdi>&lt;script&gt;alert(1)&lt;/script&gt;</bdi></th>") !=
          std::string::npos);
    CHECK(page->find("<script>alert") == std::string::npos);
    CHECK(page->find("<th><bdi>rtl-" + rlo + "gnp.exe</bdi></th>") != std::string::npos);
    // Build 2 finished at t0 + 2 min: 8 minutes before `now`.
    CHECK(page->find(R"(<a href="/builds/2"><span class="result success">success</span> )"
                     R"(<span class="age">8m</span></a>)") != std::string::npos);
    CHECK(page->find("Known failures") != std::string::npos);
    CHECK(page->find("action=\"/force\"") == std::string::npos);
    frame.user = "al" + rli + "ice";
    frame.csrf_token = "t0ken";
    page = ci::web::render_page(
        frame, "home.mustache", ci::master::home_data(config, grid, {}, t0 + 10min));
    REQUIRE(page.has_value());
    CHECK(page->find("<span class=\"user\"><bdi>al" + rli + "ice</bdi></span>") !=
          std::string::npos);
    CHECK(page->find("action=\"/force\"") != std::string::npos);
    CHECK(page->find(R"(<input type="hidden" name="csrf" value="t0ken" />)") != std::string::npos);
    CHECK(page->find(R"(name="expected_failures")") != std::string::npos);
}
