#pragma once

// Counting locks (config `locks`): how many running builds hold each. Owns its lock; every member
// is thread-safe.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <ci/config/config.h>

namespace ci::master {

class LockTable {
public:
    /// `config` must outlive the table.
    explicit LockTable(const config::Config& config) : config_(config) {}

    /// Takes one count of each of `names` when every one has room (all or nothing).
    [[nodiscard]] bool try_acquire(const std::vector<std::string>& names);
    /// Gives back what try_acquire took.
    void release(const std::vector<std::string>& names);
    /// Counts held now, for the dispatcher.
    [[nodiscard]] std::map<std::string, int> in_use();

private:
    const config::Config& config_;
    std::mutex mutex_;
    std::map<std::string, int> held_;
};

} // namespace ci::master
