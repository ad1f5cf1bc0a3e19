// The web UI's home page at 200 builders x 50 branches (issue 20: under 20 ms of master CPU),
// next to its peer, GET /api/v1/grid's JSON of the same grid, in the same run.
//
//   home_bench [DIRECTORY] [ROUNDS]
//
// Fills a SQLite store in DIRECTORY (default: /dev/shm when it exists, else the current
// directory) with one finished build per builder and branch (10,000 builds) through the Store
// API, then times, in thread CPU time, each part of what GET / does on a reader thread: the
// store's query (Store::latest_builds), the grid (make_grid), the template's data (home_data)
// and the rendering into the layout (render_page); and what GET /api/v1/grid does instead of
// the last two (grid_json). Then what the master does between builds: the store's read and the
// grid from GridCache (master/grid_cache.h), kept since the last write. Prints the median of ROUNDS
// (default 20) rounds, the whole GET / without and with the cache side by side, and the ratio
// of the page to the JSON.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>

#include <ci/config/config.h>
#include <ci/store/store.h>

#include "master/grid_cache.h"
#include "master/ui.h"
#include "web/page.h"

namespace {

constexpr int builders = 200;
constexpr int branches = 50;

double cpu_ms() {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (static_cast<double>(now.tv_sec) * 1e3) + (static_cast<double>(now.tv_nsec) / 1e6);
}

double median(std::vector<double> values) {
    std::ranges::sort(values);
    return values[values.size() / 2];
}

std::string builder_name(int i) {
    return fmt::format("builder-{:03}", i);
}

ci::config::Config make_config() {
    ci::config::Config config;
    config.repositories["app"].default_branch = "master";
    for (int i = 0; i < builders; ++i) {
        config.builders[builder_name(i)].repository = "app";
    }
    for (int i = 0; i < builders; i += 20) {
        config.failing_builders.push_back(builder_name(i)); // 10 known failures
    }
    return config;
}

// One request per builder and branch, each claimed, started and ended (every 7th a failure).
int fill(ci::store::Store& store) {
    const auto t0 = std::chrono::system_clock::now() - std::chrono::hours(24);
    std::vector<ci::sched::Action> requests;
    for (int b = 0; b < branches; ++b) {
        for (int i = 0; i < builders; ++i) {
            ci::sched::RequestBuild request;
            request.scheduler = "force";
            request.builder = builder_name(i);
            request.repository = "app";
            request.branch = b == 0 ? "master" : fmt::format("feature/branch-{:02}", b);
            request.reason = "bench";
            requests.emplace_back(std::move(request));
        }
    }
    if (auto written = store.write({ci::store::Batch{{}, requests, {}}}, t0); !written) {
        std::fprintf(stderr, "write: %s\n", written.error().message.c_str());
        return 1;
    }
    std::vector<std::string> all;
    all.reserve(builders);
    for (int i = 0; i < builders; ++i) {
        all.push_back(builder_name(i));
    }
    for (int n = 0;; ++n) {
        auto claimed = store.claim(all, "bench");
        if (!claimed || !*claimed) {
            break;
        }
        const auto started = t0 + std::chrono::seconds(n);
        auto id = store.start_build((*claimed)->id, (*claimed)->request.builder, "w/0", started);
        if (!id) {
            std::fprintf(stderr, "start_build: %s\n", id.error().message.c_str());
            return 1;
        }
        ci::store::Build build;
        build.id = *id;
        build.request_id = (*claimed)->id;
        build.builder = (*claimed)->request.builder;
        build.worker = "w/0";
        build.started = started;
        build.finished = started + std::chrono::seconds(90);
        build.result = n % 7 == 0 ? ci::BuildResult::Failure : ci::BuildResult::Success;
        if (auto ended = store.end_build(build, ci::store::RequestState::Completed); !ended) {
            std::fprintf(stderr, "end_build: %s\n", ended.error().message.c_str());
            return 1;
        }
    }
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const std::filesystem::path base =
        argc > 1 ? std::filesystem::path(argv[1])
                 : (std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : ".");
    const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 20;
    const auto dir = base / fmt::format("libci-home-bench-{}", ::getpid());
    std::filesystem::create_directories(dir);
    auto store = ci::store::open_sqlite(dir / "state.sqlite");
    if (!store) {
        std::fprintf(stderr, "open: %s\n", store.error().message.c_str());
        return 1;
    }
    const auto config = make_config();
    std::printf("filling %d builders x %d branches...\n", builders, branches);
    if (fill(**store) != 0) {
        return 1;
    }
    std::vector<double> query_ms;
    std::vector<double> grid_ms;
    std::vector<double> page_ms;
    std::vector<double> data_ms;
    std::vector<double> json_ms;
    std::size_t page_bytes = 0;
    std::size_t json_bytes = 0;
    std::size_t cells = 0;
    ci::web::Frame frame;
    frame.title = "Home";
    frame.nav = ci::web::Nav::Home;
    frame.path = "/";
    frame.live = true;
    for (int round = 0; round < rounds; ++round) {
        double start = cpu_ms();
        auto input = ci::master::grid_input(config, **store);
        if (!input) {
            std::fprintf(stderr, "grid_input: %s\n", input.error().message.c_str());
            return 1;
        }
        query_ms.push_back(cpu_ms() - start);
        cells = input->builds.size();

        start = cpu_ms();
        const auto grid = ci::web::make_grid(*input, {});
        grid_ms.push_back(cpu_ms() - start);

        start = cpu_ms();
        auto data = ci::master::home_data(config, grid, {}, std::chrono::system_clock::now());
        data_ms.push_back(cpu_ms() - start);
        auto page = ci::web::render_page(frame, "home.mustache", std::move(data));
        page_ms.push_back(cpu_ms() - start);
        if (!page) {
            std::fprintf(stderr, "render: %s\n", page.error().message.c_str());
            return 1;
        }
        page_bytes = page->size();

        start = cpu_ms();
        const auto json = ci::master::grid_json(grid);
        json_ms.push_back(cpu_ms() - start);
        json_bytes = json.size();
    }
    // Between builds: GridCache's copy (one write before, as a build's end, then one read).
    ci::master::GridCache cache(config);
    { const ci::master::GridCache::Write write(&cache); }
    if (auto first = cache.input(**store); !first) {
        std::fprintf(stderr, "cache: %s\n", first.error().message.c_str());
        return 1;
    }
    std::vector<double> cached_ms;
    for (int round = 0; round < rounds; ++round) {
        const double start = cpu_ms();
        auto grid = cache.grid(**store, {});
        if (!grid) {
            std::fprintf(stderr, "cache: %s\n", grid.error().message.c_str());
            return 1;
        }
        auto page = ci::web::render_page(
            frame,
            "home.mustache",
            ci::master::home_data(config, **grid, {}, std::chrono::system_clock::now()));
        cached_ms.push_back(cpu_ms() - start);
        if (!page) {
            std::fprintf(stderr, "render: %s\n", page.error().message.c_str());
            return 1;
        }
    }
    const auto counts = cache.counts();
    std::filesystem::remove_all(dir);

    const double grid = median(grid_ms);
    const double page = median(page_ms);
    const double json = median(json_ms);
    std::printf(
        "home page, %d builders x %d branches (%zu cells), median of %d rounds, thread CPU:\n",
        builders,
        branches,
        cells,
        rounds);
    std::printf("  store query (latest_builds)      %8.2f ms\n", median(query_ms));
    std::printf("  grid (make_grid)                 %8.2f ms\n", grid);
    std::printf("  HTML (home_data + render_page)   %8.2f ms  %zu bytes\n", page, page_bytes);
    std::printf("    of which the template's data   %8.2f ms\n", median(data_ms));
    std::printf("  peer: JSON (grid_json)           %8.2f ms  %zu bytes\n", json, json_bytes);
    std::printf("  page render CPU (grid + HTML)    %8.2f ms  (target < 20 ms): %s\n",
                grid + page,
                grid + page < 20 ? "met" : "NOT met");
    std::printf("  ratio HTML / JSON                %8.2f\n", page / json);
    const double uncached = median(query_ms) + grid + page;
    const double cached = median(cached_ms);
    std::printf("GET / side by side (query + grid + HTML, or GridCache + HTML), thread CPU:\n");
    std::printf("  without the cache (a build just ended) %8.2f ms\n", uncached);
    std::printf("  with GridCache's copy (between builds) %8.2f ms  (target < 20 ms): %s\n",
                cached,
                cached < 20 ? "met" : "NOT met");
    std::printf("  ratio without / with                   %8.2f  (cache: %llu hits, %llu "
                "misses)\n",
                uncached / cached,
                static_cast<unsigned long long>(counts.hits),
                static_cast<unsigned long long>(counts.misses));
    return 0;
}
