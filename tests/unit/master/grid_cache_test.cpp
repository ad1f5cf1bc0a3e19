// GridCache (the home grid's store read kept between builds) over a real SQLite store: a read
// after a write's end sees it, a read during a write is never kept; and build_links: a build's
// triggered requests and its results directory's entries (hidden and linked ones left out).

#include <chrono>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>

#include "master/build_links.h"
#include "master/grid_cache.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;

const auto t0 = std::chrono::system_clock::from_time_t(1795510800);

ci::sched::RequestBuild request_for(const std::string& builder, const std::string& branch) {
    ci::sched::RequestBuild request;
    request.scheduler = "force";
    request.builder = builder;
    request.repository = "app";
    request.branch = branch;
    request.reason = "test";
    return request;
}

ci::config::Config config() {
    ci::config::Config config;
    config.repositories["app"].default_branch = "master";
    config.builders["tests"].repository = "app";
    config.builders["docs"].repository = "app";
    return config;
}

// Claims the next request and starts its build, as the dispatcher does (inside a Write).
std::int64_t start(ci::store::Store& store, ci::master::GridCache& cache) {
    auto claimed = store.claim({"tests", "docs"}, "d");
    REQUIRE_OK(claimed);
    REQUIRE(claimed->has_value());
    const ci::master::GridCache::Write write(&cache);
    auto id = store.start_build((*claimed)->id, (*claimed)->request.builder, "w", t0);
    REQUIRE_OK(id);
    return *id;
}

std::string result_of(const ci::web::GridInput& input, std::int64_t build) {
    for (const auto& entry : input.builds) {
        if (entry.build.id == build) {
            return ci::web::result_name(entry.build);
        }
    }
    return "absent";
}

} // namespace

TEST_CASE("grid cache: kept between writes, read again after one, never kept across one") {
    ci::test::TempDir dir;
    auto opened = ci::store::open_sqlite(dir / "state.sqlite");
    REQUIRE_OK(opened);
    auto& store = **opened;
    const auto cfg = config();
    ci::master::GridCache cache(cfg);
    REQUIRE_OK(store.write({ci::store::Batch{{}, {request_for("tests", "master")}, {}}}, t0));
    const auto id = start(store, cache);

    auto first = cache.input(store);
    REQUIRE_OK(first);
    CHECK(result_of(**first, id) == "running");
    auto second = cache.input(store);
    REQUIRE_OK(second);
    CHECK(second->get() == first->get()); // the same copy: no query
    CHECK(cache.counts().hits == 1);
    CHECK(cache.counts().misses == 1);
    CHECK((*first)->builders.size() == 2); // the config's part is there too

    // The build ends: the next read sees it at once.
    auto build = store.build(id);
    REQUIRE_OK(build);
    auto ended = **build;
    ended.finished = t0 + 10s;
    ended.result = ci::BuildResult::Failure;
    {
        const ci::master::GridCache::Write write(&cache);
        REQUIRE_OK(store.end_build(ended, ci::store::RequestState::Completed, {}));
        // Committed, the write not yet over: read from the store, and not kept.
        auto during = cache.input(store);
        REQUIRE_OK(during);
        CHECK(result_of(**during, id) == "failure");
    }
    auto after = cache.input(store);
    REQUIRE_OK(after);
    CHECK(result_of(**after, id) == "failure");
    CHECK(cache.counts().misses == 3);
    auto again = cache.input(store);
    REQUIRE_OK(again);
    CHECK(again->get() == after->get());
    CHECK(cache.counts().hits == 2);

    // A write that changes nothing (it failed, say) still makes the next read a fresh one.
    { const ci::master::GridCache::Write write(&cache); }
    auto fresh = cache.input(store);
    REQUIRE_OK(fresh);
    CHECK(fresh->get() != again->get());
    // The grid made of it: kept for the same filter, made again for another or after a write.
    auto grid = cache.grid(store, {});
    REQUIRE_OK(grid);
    CHECK((*grid)->rows.size() == 2); // every builder of the config
    auto same = cache.grid(store, {});
    REQUIRE_OK(same);
    CHECK(same->get() == grid->get());
    ci::web::GridFilter failures;
    failures.result = "failure";
    auto filtered = cache.grid(store, failures);
    REQUIRE_OK(filtered);
    CHECK(filtered->get() != grid->get());
    CHECK((*filtered)->rows.size() == 1);
    failures.result = "success";
    auto none = cache.grid(store, failures);
    REQUIRE_OK(none);
    CHECK((*none)->rows.empty());
    { const ci::master::GridCache::Write write(&cache); }
    auto remade = cache.grid(store, failures);
    REQUIRE_OK(remade);
    CHECK(remade->get() != none->get());
    CHECK((*remade)->rows.empty());
    // A null cache is allowed (nothing to tell).
    { const ci::master::GridCache::Write write(nullptr); }
}

TEST_CASE("build links: triggered requests with their newest build, results entries listed") {
    ci::test::TempDir dir;
    auto opened = ci::store::open_sqlite(dir / "state.sqlite");
    REQUIRE_OK(opened);
    auto& store = **opened;
    const auto cfg = config();
    ci::master::GridCache cache(cfg);
    REQUIRE_OK(store.write({ci::store::Batch{{}, {request_for("tests", "release/1.2")}, {}}}, t0));
    const auto id = start(store, cache);
    auto build = store.build(id);
    REQUIRE_OK(build);
    auto request = store.request((*build)->request_id);
    REQUIRE_OK(request);
    const auto results = dir / "results";

    auto none = ci::master::build_links(store, cfg, results, **build, &**request);
    REQUIRE_OK(none);
    CHECK(none->triggered.empty());
    CHECK(none->results_url.empty()); // no directory: no results
    CHECK(none->artifacts.empty());

    auto triggered =
        store.trigger((*request)->id, 2, {request_for("docs", "release/1.2")}, t0 + 1s);
    REQUIRE_OK(triggered);
    const auto docs = start(store, cache);
    // The build's results directory: BRANCH percent-encoded (build/results.h).
    const auto mine = results / "tests" / "release%2F1.2" / std::to_string(id);
    std::filesystem::create_directories(mine / "html docs");
    std::filesystem::create_directories(mine / ".html.partial-3"); // an upload's staging
    std::ofstream(mine / "app.tar.gz") << "x";
    std::filesystem::create_symlink("/etc/passwd", mine / "passwd");

    auto links = ci::master::build_links(store, cfg, results, **build, &**request);
    REQUIRE_OK(links);
    REQUIRE(links->triggered.size() == 1);
    CHECK(links->triggered[0].request == triggered->request_ids[0]);
    CHECK(links->triggered[0].step == 2);
    CHECK(links->triggered[0].builder == "docs");
    CHECK(links->triggered[0].state == "claimed");
    CHECK(links->triggered[0].build == docs);
    CHECK(links->triggered[0].result == "running");
    const auto base = "/results/tests/release%252F1.2/" + std::to_string(id) + "/";
    CHECK(links->results_url == base);
    REQUIRE(links->artifacts.size() == 2);
    CHECK(links->artifacts[0].name == "app.tar.gz");
    CHECK_FALSE(links->artifacts[0].directory);
    CHECK(links->artifacts[0].url == base + "app.tar.gz");
    CHECK(links->artifacts[1].name == "html docs");
    CHECK(links->artifacts[1].directory);
    CHECK(links->artifacts[1].url == base + "html%20docs/");

    // The results directory itself a symbolic link: not followed.
    const auto other = results / "tests" / "release%2F1.2" / "999";
    std::filesystem::create_directory_symlink(mine, other);
    auto linked_build = **build;
    linked_build.id = 999;
    auto linked = ci::master::build_links(store, cfg, results, linked_build, &**request);
    REQUIRE_OK(linked);
    CHECK(linked->results_url.empty());

    // The results branch: the request's, else its repository's default, "" without one.
    ci::store::BuildRequest plain;
    plain.request.repository = "app";
    CHECK(ci::master::results_branch(cfg, plain) == "master");
    plain.request.repository.clear();
    plain.request.branch = "ignored";
    CHECK(ci::master::results_branch(cfg, plain).empty());
}
