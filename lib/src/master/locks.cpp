#include "master/locks.h"

#include <algorithm>

namespace ci::master {

bool LockTable::try_acquire(const std::vector<std::string>& names) {
    const std::lock_guard lock(mutex_);
    const bool room = std::ranges::all_of(names, [&](const std::string& name) {
        const auto found = config_.locks.find(name);
        const int max = found == config_.locks.end() ? 1 : found->second.max_count;
        return held_[name] + 1 <= max;
    });
    if (!room) {
        return false;
    }
    for (const auto& name : names) {
        ++held_[name];
    }
    return true;
}

void LockTable::release(const std::vector<std::string>& names) {
    const std::lock_guard lock(mutex_);
    for (const auto& name : names) {
        if (auto found = held_.find(name); found != held_.end() && --found->second <= 0) {
            held_.erase(found);
        }
    }
}

std::map<std::string, int> LockTable::in_use() {
    const std::lock_guard lock(mutex_);
    return held_;
}

} // namespace ci::master
