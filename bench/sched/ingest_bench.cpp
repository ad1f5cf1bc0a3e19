// Durable ingest of push events through the scheduler into the SQLite store, at 1,000 branches:
// events per second and acknowledgement latency, with group commit (the Ingestor's batches)
// next to one transaction per event, in the same run.
//
//   ingest_bench [SECONDS] [DIRECTORY]
//
// DIRECTORY must be on a real disk (not tmpfs): every acknowledged batch is fsynced
// (synchronous=FULL). Default: the current directory.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <future>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "store/ingest.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr int branches = 1000;
constexpr int producers = 8;
constexpr std::size_t window = 256; // events in flight per producer

const char* config_text = R"(
slaves: {local: {local: true}}
repositories: {app: {url: /srv/app.git}}
builders: {tests: {repository: app, workers: [local], steps: [{name: t, run: "true"}]}}
schedulers:
  main: {type: branch, repository: app, builders: [tests], branches: ["*"],
         tree_stable_timer: 5s, max_wait: 10m}
)";

struct Outcome {
    double events_per_second = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    std::size_t failures = 0;
};

Outcome run(const std::filesystem::path& database, std::size_t max_batch, double seconds) {
    std::filesystem::remove(database);
    std::filesystem::remove(database.string() + "-wal");
    std::filesystem::remove(database.string() + "-shm");
    auto config = ci::config::parse_config(config_text, "bench").to_result();
    auto store = ci::store::open_sqlite(database);
    if (!config || !store) {
        std::fprintf(
            stderr, "error: %s\n", (!config ? config.error() : store.error()).to_string().c_str());
        std::exit(1);
    }
    ci::store::IngestOptions options;
    options.max_batch = max_batch;
    auto ingestor =
        ci::store::Ingestor::start(*config, **store, ci::SystemClock::instance(), options);
    if (!ingestor) {
        std::fprintf(stderr, "error: %s\n", ingestor.error().to_string().c_str());
        std::exit(1);
    }
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> done{0};
    std::atomic<std::size_t> failures{0};
    std::vector<std::vector<double>> latencies(producers);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(producers));
    const auto start = Clock::now();
    for (int p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            std::mt19937 random(static_cast<unsigned>(p));
            std::deque<std::pair<std::future<ci::Result<ci::store::Receipt>>, Clock::time_point>>
                in_flight;
            const auto settle = [&] {
                auto& [future, submitted] = in_flight.front();
                auto receipt = future.get();
                const double ms =
                    std::chrono::duration<double, std::milli>(Clock::now() - submitted).count();
                latencies[p].push_back(ms);
                failures += receipt ? 0 : 1;
                ++done;
                in_flight.pop_front();
            };
            int n = 0;
            while (!stop) {
                ci::sched::Change change;
                change.repository = "app";
                change.branch = "feature/" + std::to_string(random() % branches);
                change.revision = std::to_string(p) + "-" + std::to_string(n++);
                change.author = "bench <bench@example.org>";
                change.files = std::vector<std::string>{"src/file.cpp"};
                change.when = std::chrono::system_clock::now();
                in_flight.emplace_back((*ingestor)->submit(ci::sched::Push{{std::move(change)}}),
                                       Clock::now());
                if (in_flight.size() >= window) {
                    settle();
                }
            }
            while (!in_flight.empty()) {
                settle();
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& thread : threads) {
        thread.join();
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> all;
    for (const auto& list : latencies) {
        all.insert(all.end(), list.begin(), list.end());
    }
    std::ranges::sort(all);
    Outcome outcome;
    outcome.events_per_second = static_cast<double>(done) / elapsed;
    outcome.p50_ms = all.empty() ? 0 : all[all.size() / 2];
    outcome.p99_ms = all.empty() ? 0 : all[all.size() * 99 / 100];
    outcome.failures = failures;
    return outcome;
}

} // namespace

int main(int argc, char** argv) {
    if (argc > 1 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
        std::printf("usage: ingest_bench [SECONDS] [DIRECTORY]\n"
                    "Durable ingest of push events at 1,000 branches, group commit vs one "
                    "transaction per event.\nSECONDS per run (default 5); DIRECTORY on a real disk "
                    "(default: the current one).\n");
        return 0;
    }
    char* end = nullptr;
    const double seconds = argc > 1 ? std::strtod(argv[1], &end) : 5.0;
    if (argc > 3 || (argc > 1 && (end == argv[1] || *end != '\0' || !(seconds > 0)))) {
        std::fprintf(stderr,
                     "error: expected [SECONDS] (a positive number) and at most one more "
                     "argument; --help says more\n");
        return 2;
    }
    const std::filesystem::path dir = argc > 2 ? argv[2] : ".";
    const auto database = dir / "ingest-bench.sqlite";
    const auto grouped = run(database, 4096, seconds);
    const auto single = run(database, 1, seconds);
    std::printf("ingest.group_commit %.0f events/s, p50 %.2f ms, p99 %.2f ms, %zu failed\n",
                grouped.events_per_second,
                grouped.p50_ms,
                grouped.p99_ms,
                grouped.failures);
    std::printf("ingest.one_per_transaction %.0f events/s, p50 %.2f ms, p99 %.2f ms, %zu failed\n",
                single.events_per_second,
                single.p50_ms,
                single.p99_ms,
                single.failures);
    std::printf("ingest.ratio %.1fx (target: group commit >= 20000 events/s)\n",
                grouped.events_per_second / std::max(single.events_per_second, 1.0));
    std::filesystem::remove(database);
    std::filesystem::remove(database.string() + "-wal");
    std::filesystem::remove(database.string() + "-shm");
    return grouped.failures == 0 && single.failures == 0 ? 0 : 1;
}
