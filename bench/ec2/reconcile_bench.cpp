// The master's EC2 pool (master/ec2_pool.h: the shell, its store, the real Ec2Client over
// libcurl) against moto_server, in this process: it launches COUNT instances for COUNT waiting
// build requests, then reconciles ROUNDS times (DescribeInstances of every instance tagged
// ci:master=<host>, page after page, compared with what the pool knows, changes stored), and
// prints the CPU seconds (getrusage of this process: user + system) and wall seconds of each
// phase, one "name value" per line. The bench script (bench/ec2/ec2_bench.py) prints them next
// to botocore's paging of the same instances.
//
//   ec2_reconcile_bench DIR COUNT ROUNDS
//
// The endpoint comes from AWS_ENDPOINT_URL_EC2, the key from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (never argv). DIR holds the store. Exits 1 when the pool does not end up
// knowing COUNT live instances.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <sys/resource.h>

#include <ci/config/load.h>
#include <ci/core/clock.h>
#include <ci/store/store.h>

#include "master/credentials.h"
#include "master/ec2_pool.h"
#include "master/registry.h"
#include "master/reports.h"

namespace {

using namespace std::chrono_literals;

constexpr auto reconcile_every = 180s;

double cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto seconds = [](const timeval& value) {
        return static_cast<double>(value.tv_sec) + static_cast<double>(value.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double wall_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

struct Cost {
    double cpu = 0;
    double wall = 0;
};

template <typename Work> Cost measure(Work&& work) {
    const double cpu = cpu_seconds();
    const double wall = wall_seconds();
    work();
    return Cost{cpu_seconds() - cpu, wall_seconds() - wall};
}

int fail(const std::string& message) {
    std::fprintf(stderr, "error: %s\n", message.c_str());
    return 1;
}

std::size_t live_instances(ci::master::Ec2Pool& pool) {
    const auto instances = pool.instances();
    return static_cast<std::size_t>(std::ranges::count_if(instances, [](const auto& instance) {
        return instance.state == "pending" || instance.state == "running";
    }));
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: ec2_reconcile_bench DIR COUNT ROUNDS\n");
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    const int count = std::atoi(argv[2]);
    const int rounds = std::atoi(argv[3]);
    const char* endpoint = std::getenv("AWS_ENDPOINT_URL_EC2");
    if (count <= 0 || rounds <= 0 || endpoint == nullptr) {
        std::fprintf(stderr,
                     "usage: ec2_reconcile_bench DIR COUNT ROUNDS (COUNT, ROUNDS > 0; "
                     "AWS_ENDPOINT_URL_EC2 set)\n");
        return 2;
    }
    const auto state = dir / "state.sqlite";
    const auto text = fmt::format(R"(
buildmaster: {{host: ci-ec2-bench.example.org, state: "{}"}}
aws: {{region: us-east-1}}
slaves:
  bench: {{ami: ci-base, slaves: {}, instance_type: t2.micro, missing_timeout: 10h}}
builders:
  on-ec2: {{workers: [bench], steps: [{{name: t, run: "true"}}]}}
schedulers: {{force: {{type: force, builders: [on-ec2]}}}}
)",
                                  state.string(),
                                  count);
    auto parsed = ci::config::parse_config(text, "bench.yml").to_result();
    if (!parsed) {
        return fail(parsed.error().to_string());
    }
    const ci::config::Config& config = *parsed;
    ci::ManualClock clock{std::chrono::system_clock::now()};
    {
        auto store = ci::store::open_sqlite(state);
        if (!store) {
            return fail(store.error().to_string());
        }
        ci::store::Batch batch;
        for (int i = 0; i < count; ++i) {
            ci::sched::RequestBuild request;
            request.scheduler = "force";
            request.builder = "on-ec2";
            request.reason = "bench";
            batch.actions.emplace_back(request);
        }
        if (auto written = (*store)->write({batch}, clock.now()); !written) {
            return fail(written.error().to_string());
        }
    }
    ci::master::Credentials credentials{config, clock};
    ci::master::WorkerRegistry workers;
    ci::master::Reports reports{config, clock, {}, "http://ci"};
    auto made = ci::master::Ec2Pool::create(ci::master::Ec2Pool::Parts{
        config, clock, credentials, workers, reports, state, {}, reconcile_every, {}});
    if (!made) {
        return fail(made.error().to_string());
    }
    auto& pool = **made;

    // Launch: one reconcile (nothing tagged yet) and a tick that launches COUNT instances.
    const auto launch = measure([&] { pool.step(true); });
    const auto launched = live_instances(pool);
    fmt::print("launch.instances {}\nlaunch.cpu_s {:.4f}\nlaunch.wall_s {:.4f}\n",
               launched,
               launch.cpu,
               launch.wall);
    if (launched != static_cast<std::size_t>(count)) {
        return fail(fmt::format("{} of {} launches made an instance", launched, count));
    }

    // A tick alone (no reconcile due): what a reconcile's step costs besides the reconcile.
    std::vector<Cost> ticks;
    std::vector<Cost> reconciles;
    for (int round = 0; round < rounds; ++round) {
        ticks.push_back(measure([&] { pool.step(false); }));
        clock.advance(reconcile_every + 1s);
        reconciles.push_back(measure([&] { pool.step(false); }));
        if (live_instances(pool) != static_cast<std::size_t>(count)) {
            return fail(
                fmt::format("round {}: the pool knows {} live instances after reconciling, not {}",
                            round + 1,
                            live_instances(pool),
                            count));
        }
    }
    const auto print = [](const char* name, std::vector<Cost> costs) {
        std::ranges::sort(costs, {}, &Cost::cpu);
        const auto& median = costs[costs.size() / 2];
        fmt::print("{0}.cpu_s.best {1:.4f}\n{0}.cpu_s.median {2:.4f}\n{0}.wall_s.median {3:.4f}\n",
                   name,
                   costs.front().cpu,
                   median.cpu,
                   median.wall);
    };
    print("tick", ticks);
    print("reconcile_step", reconciles);
    return 0;
}
