#include "master/locks.h"

#include <algorithm>

namespace ci::master {

std::string
lock_key(const config::Config& config, const std::string& lock, const std::string& worker) {
    const auto found = config.locks.find(lock);
    if (found == config.locks.end() || found->second.scope != config::Lock::Scope::Worker) {
        return lock;
    }
    // A NUL cannot be part of a YAML key that names a lock, so no two keys collide.
    std::string key = lock;
    key += '\0';
    key += worker;
    return key;
}

bool LockTable::try_acquire(const std::vector<std::string>& names, const std::string& worker) {
    const std::lock_guard lock(mutex_);
    const bool room = std::ranges::all_of(names, [&](const std::string& name) {
        const auto found = config_.locks.find(name);
        const int max = found == config_.locks.end() ? 1 : found->second.max_count;
        const auto held = held_.find(lock_key(config_, name, worker));
        return (held == held_.end() ? 0 : held->second) + 1 <= max;
    });
    if (!room) {
        return false;
    }
    for (const auto& name : names) {
        ++held_[lock_key(config_, name, worker)];
    }
    return true;
}

void LockTable::release(const std::vector<std::string>& names, const std::string& worker) {
    const std::lock_guard lock(mutex_);
    for (const auto& name : names) {
        if (auto found = held_.find(lock_key(config_, name, worker));
            found != held_.end() && --found->second <= 0) {
            held_.erase(found);
        }
    }
}

std::map<std::string, int> LockTable::in_use() {
    const std::lock_guard lock(mutex_);
    return held_;
}

} // namespace ci::master
