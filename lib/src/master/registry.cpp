#include "master/registry.h"

#include <algorithm>

namespace ci::master {

const char* WorkerView::state() const {
    if (shutting_down) {
        return "shutting down";
    }
    if (draining) {
        return "draining";
    }
    if (paused) {
        return "paused";
    }
    return builds.empty() ? "idle" : "building";
}

std::optional<WorkerRegistry::Replaced> WorkerRegistry::add(const std::string& name,
                                                            const std::string& worker_class,
                                                            int max_builds,
                                                            bool local,
                                                            std::shared_ptr<Link> link) {
    const std::lock_guard lock(mutex_);
    std::optional<Replaced> replaced;
    if (auto old = workers_.find(name); old != workers_.end()) {
        replaced = Replaced{std::move(old->second.link),
                            {old->second.builds.begin(), old->second.builds.end()}};
        workers_.erase(old);
    }
    Worker worker;
    worker.worker_class = worker_class;
    worker.max_builds = max_builds;
    worker.local = local;
    worker.link = std::move(link);
    worker.last_seen = std::chrono::steady_clock::now();
    workers_.emplace(name, std::move(worker));
    return replaced;
}

std::optional<std::vector<std::int64_t>> WorkerRegistry::remove(const std::string& name,
                                                                const Link* link) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end() || found->second.link.get() != link) {
        return std::nullopt;
    }
    std::vector<std::int64_t> builds(found->second.builds.begin(), found->second.builds.end());
    workers_.erase(found);
    return builds;
}

std::vector<WorkerRegistry::Removed> WorkerRegistry::remove_all() {
    const std::lock_guard lock(mutex_);
    std::vector<Removed> out;
    out.reserve(workers_.size());
    for (auto& [name, worker] : workers_) {
        out.push_back(Removed{name, worker.worker_class, std::move(worker.link)});
    }
    workers_.clear();
    return out;
}

bool WorkerRegistry::heard(const std::string& name, const Link* link) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end() || found->second.link.get() != link) {
        return false;
    }
    found->second.last_seen = std::chrono::steady_clock::now();
    return true;
}

void WorkerRegistry::drain(const std::string& name) {
    const std::lock_guard lock(mutex_);
    if (auto found = workers_.find(name); found != workers_.end()) {
        found->second.draining = true;
    }
}

bool WorkerRegistry::set_paused(const std::string& name, bool paused) {
    const std::lock_guard lock(mutex_);
    return paused ? paused_.insert(name).second : paused_.erase(name) > 0;
}

bool WorkerRegistry::paused(const std::string& name) {
    const std::lock_guard lock(mutex_);
    return paused_.contains(name);
}

WorkerRegistry::ShutDown WorkerRegistry::shut_down(const std::string& name,
                                                   std::shared_ptr<Link>& link) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end()) {
        return ShutDown::NotConnected;
    }
    if (found->second.shutting_down) {
        return ShutDown::Already;
    }
    found->second.shutting_down = true;
    link = found->second.link;
    return ShutDown::Started;
}

bool WorkerRegistry::accepting(const std::string& name, const Worker& worker) const {
    return !worker.draining && !worker.shutting_down && !paused_.contains(name);
}

bool WorkerRegistry::reserve(const std::string& name) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end()) {
        return false;
    }
    auto& worker = found->second;
    const auto used = static_cast<int>(worker.builds.size()) + worker.reserved;
    if (!accepting(name, worker) || used >= worker.max_builds) {
        return false;
    }
    ++worker.reserved;
    return true;
}

std::shared_ptr<Link> WorkerRegistry::attach(const std::string& name, std::int64_t build) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end()) {
        return nullptr;
    }
    auto& worker = found->second;
    worker.reserved = std::max(0, worker.reserved - 1);
    worker.builds.insert(build);
    return worker.link;
}

void WorkerRegistry::unreserve(const std::string& name) {
    const std::lock_guard lock(mutex_);
    if (auto found = workers_.find(name); found != workers_.end()) {
        found->second.reserved = std::max(0, found->second.reserved - 1);
    }
}

void WorkerRegistry::release(const std::string& name, std::int64_t build) {
    const std::lock_guard lock(mutex_);
    if (auto found = workers_.find(name); found != workers_.end()) {
        found->second.builds.erase(build);
    }
}

std::shared_ptr<Link> WorkerRegistry::link(const std::string& name) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    return found == workers_.end() ? nullptr : found->second.link;
}

std::vector<WorkerLoad> WorkerRegistry::loads() {
    const std::lock_guard lock(mutex_);
    std::vector<WorkerLoad> out;
    out.reserve(workers_.size());
    for (const auto& [name, worker] : workers_) {
        out.push_back(WorkerLoad{name,
                                 worker.worker_class,
                                 worker.max_builds,
                                 static_cast<int>(worker.builds.size()) + worker.reserved,
                                 accepting(name, worker)});
    }
    return out;
}

bool WorkerRegistry::any_free_slot() {
    const std::lock_guard lock(mutex_);
    return std::ranges::any_of(workers_, [this](const auto& entry) {
        const auto& [name, worker] = entry;
        return accepting(name, worker) &&
               static_cast<int>(worker.builds.size()) + worker.reserved < worker.max_builds;
    });
}

WorkerView WorkerRegistry::to_view(const std::string& name, const Worker& worker) const {
    return WorkerView{name,
                      worker.worker_class,
                      worker.local,
                      worker.draining,
                      paused_.contains(name),
                      worker.shutting_down,
                      {worker.builds.begin(), worker.builds.end()},
                      worker.last_seen};
}

std::vector<WorkerView> WorkerRegistry::views() {
    const std::lock_guard lock(mutex_);
    std::vector<WorkerView> out;
    out.reserve(workers_.size());
    for (const auto& [name, worker] : workers_) {
        out.push_back(to_view(name, worker));
    }
    return out;
}

std::optional<WorkerView> WorkerRegistry::view(const std::string& name) {
    const std::lock_guard lock(mutex_);
    const auto found = workers_.find(name);
    if (found == workers_.end()) {
        return std::nullopt;
    }
    return to_view(name, found->second);
}

int WorkerRegistry::remote_count() {
    const std::lock_guard lock(mutex_);
    return static_cast<int>(
        std::ranges::count_if(workers_, [](const auto& entry) { return !entry.second.local; }));
}

} // namespace ci::master
