#pragma once

// De-duplication of GitHub webhook deliveries (X-GitHub-Delivery): a delivery is remembered
// exactly when its changes are stored, and the newest ones are kept in memory to answer a
// redelivery without a database read. Owns its lock; every member is thread-safe.

#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace ci::master {

class Deliveries {
public:
    /// Keeps the newest `capacity` stored deliveries (GitHub redelivers by hand, soon after a
    /// failure).
    explicit Deliveries(std::size_t capacity = 200000) : capacity_(capacity) {}

    /// What a delivery is, as it arrives.
    enum class Seen {
        New,      ///< now in flight: the caller must call stored() or forget() for it
        Stored,   ///< stored before: a duplicate
        InFlight, ///< being stored now: neither a duplicate (the write may fail) nor new
    };
    [[nodiscard]] Seen begin(const std::string& id);
    /// Its changes are on disk.
    void stored(const std::string& id);
    /// Its write failed or it stored nothing: a redelivery is new again.
    void forget(const std::string& id);
    /// Loads deliveries stored before (at start), oldest first.
    void load(const std::vector<std::string>& ids);

private:
    void remember_locked(const std::string& id);

    std::size_t capacity_;
    std::mutex mutex_;
    std::unordered_set<std::string> stored_;
    std::deque<std::string> order_;
    std::unordered_set<std::string> in_flight_;
};

} // namespace ci::master
