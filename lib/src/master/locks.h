#pragma once

// Counting locks (config `locks`): how many running builds hold each. A lock of scope `master` is
// counted across workers; one of scope `worker` is counted on each worker apart (its key names
// the worker: lock_key). Owns its lock; every member is thread-safe.

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <ci/config/config.h>

namespace ci::master {

/// What a lock is counted under: its name for a lock of scope master (or an unknown one), its
/// name and the worker's for a lock of scope worker.
[[nodiscard]] std::string
lock_key(const config::Config& config, const std::string& lock, const std::string& worker);

class LockTable {
public:
    /// `config` must outlive the table.
    explicit LockTable(const config::Config& config) : config_(config) {}

    /// Takes one count of each of `names` for a build on `worker` when every one has room (all
    /// or nothing).
    [[nodiscard]] bool try_acquire(const std::vector<std::string>& names,
                                   const std::string& worker);
    /// Gives back what try_acquire took.
    void release(const std::vector<std::string>& names, const std::string& worker);
    /// Counts held now by lock_key, for the dispatcher.
    [[nodiscard]] std::map<std::string, int> in_use();

private:
    const config::Config& config_;
    std::mutex mutex_;
    std::map<std::string, int> held_;
};

} // namespace ci::master
