#include "master/dispatch.h"

#include <algorithm>

#include "master/locks.h"

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
        const auto& locks = builder->second.locks;
        // On `worker` (a lock of scope master: on any worker, the same key).
        const auto locks_free = [&](const std::string& worker) {
            return std::ranges::all_of(locks, [&](const auto& name) {
                const auto lock = config.locks.find(name);
                const int max = lock == config.locks.end() ? 1 : lock->second.max_count;
                return locks_in_use[lock_key(config, name, worker)] + 1 <= max;
            });
        };
        WorkerLoad* best = nullptr;
        for (auto& worker : workers) {
            if (!worker.accepting || worker.running >= worker.max_builds ||
                std::ranges::find(builder->second.workers, worker.worker_class) ==
                    builder->second.workers.end() ||
                !locks_free(worker.name)) {
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
        for (const auto& name : locks) {
            ++locks_in_use[lock_key(config, name, best->name)];
        }
        out.push_back(Assignment{request.id, best->name});
    }
    return out;
}

} // namespace ci::master
