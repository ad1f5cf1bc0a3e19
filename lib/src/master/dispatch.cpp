#include "master/dispatch.h"

#include <algorithm>

namespace ci::master {

std::vector<Assignment> assign(const std::vector<QueuedRequest>& queue,
                               std::vector<WorkerLoad> workers,
                               std::map<std::string, int> locks_in_use,
                               const config::Config& config) {
    std::vector<Assignment> out;
    for (const auto& request : queue) {
        const auto builder = config.builders.find(request.builder);
        if (builder == config.builders.end()) {
            continue;
        }
        const bool locks_free = std::ranges::all_of(builder->second.locks, [&](const auto& name) {
            const auto lock = config.locks.find(name);
            const int max = lock == config.locks.end() ? 1 : lock->second.max_count;
            return locks_in_use[name] + 1 <= max;
        });
        if (!locks_free) {
            continue;
        }
        WorkerLoad* best = nullptr;
        for (auto& worker : workers) {
            if (!worker.accepting || worker.running >= worker.max_builds ||
                std::ranges::find(builder->second.workers, worker.worker_class) ==
                    builder->second.workers.end()) {
                continue;
            }
            if (best == nullptr) {
                best = &worker;
                continue;
            }
            // Least busy: fewer builds, then a smaller share of its slots, then the name.
            const auto share = [](const WorkerLoad& w) {
                return static_cast<double>(w.running) / static_cast<double>(w.max_builds);
            };
            if (std::tuple(worker.running, share(worker), worker.name) <
                std::tuple(best->running, share(*best), best->name)) {
                best = &worker;
            }
        }
        if (best == nullptr) {
            continue;
        }
        ++best->running;
        for (const auto& name : builder->second.locks) {
            ++locks_in_use[name];
        }
        out.push_back(Assignment{request.id, best->name});
    }
    return out;
}

} // namespace ci::master
