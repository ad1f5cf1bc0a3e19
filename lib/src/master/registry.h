#pragma once

// The workers connected now: their class, slots (max_builds), builds, heartbeats and links.
// Owns its lock; every member is thread-safe. It decides nothing about builds: the coordinator
// ends the builds of a worker that left, the dispatcher fills free slots.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "master/dispatch.h"
#include "master/link.h"

namespace ci::master {

/// A connected worker as the API shows it.
struct WorkerView {
    std::string name;
    std::string worker_class;
    bool local = false;
    bool draining = false;
    bool paused = false;        ///< paused by a user (WorkerRegistry::set_paused)
    bool shutting_down = false; ///< told to exit once its builds end (WorkerRegistry::shut_down)
    std::vector<std::int64_t> builds;
    std::chrono::steady_clock::time_point last_seen;
    /// "shutting down", "draining", "paused", "building" or "idle" (the first that holds).
    [[nodiscard]] const char* state() const;
};

class WorkerRegistry {
public:
    /// What connecting a worker replaced: the same name connected before (it restarted, or its
    /// old connection is half-open). The new connection wins.
    struct Replaced {
        std::shared_ptr<Link> link;       ///< to close (outside any lock)
        std::vector<std::int64_t> builds; ///< the old connection's builds, to retry
    };
    [[nodiscard]] std::optional<Replaced> add(const std::string& name,
                                              const std::string& worker_class,
                                              int max_builds,
                                              bool local,
                                              std::shared_ptr<Link> link);
    /// Removes the worker if `link` is still its connection; returns its builds (nullopt: an old
    /// connection of a worker that connected again, or unknown).
    [[nodiscard]] std::optional<std::vector<std::int64_t>> remove(const std::string& name,
                                                                  const Link* link);
    /// A worker removed by remove_all().
    struct Removed {
        std::string name;
        std::string worker_class;
        std::shared_ptr<Link> link;
    };
    /// Removes every worker (shutdown).
    [[nodiscard]] std::vector<Removed> remove_all();

    /// True when `link` is `name`'s connection now; also notes that the worker was heard from.
    [[nodiscard]] bool heard(const std::string& name, const Link* link);
    /// The worker takes no new builds.
    void drain(const std::string& name);

    /// Pauses (or resumes) worker `name`, connected or not: a paused worker gets no new builds;
    /// its running builds go on. Kept by name, so a reconnect does not unpause it; not kept
    /// across a master restart. Returns whether this changed anything.
    bool set_paused(const std::string& name, bool paused);
    /// Whether `name` is paused (connected or not).
    [[nodiscard]] bool paused(const std::string& name);
    /// What shut_down() did.
    enum class ShutDown {
        NotConnected, ///< no such connected worker: nothing changed
        Started,      ///< it takes no new builds from now on; tell it (the returned link)
        Already,      ///< it was shutting down already
    };
    /// Worker `name`'s connection takes no new builds from now on (for good: a connection
    /// shut down is not resumed). `link` is set to its link when Started.
    [[nodiscard]] ShutDown shut_down(const std::string& name, std::shared_ptr<Link>& link);

    /// Holds a slot of `name` for a build about to start: false when the worker is gone,
    /// draining or full. A held slot counts as running until attach() or release().
    [[nodiscard]] bool reserve(const std::string& name);
    /// Gives a held slot its build; returns the worker's link, or null when the worker left
    /// meanwhile (the caller ends the build).
    [[nodiscard]] std::shared_ptr<Link> attach(const std::string& name, std::int64_t build);
    /// Frees a held slot that got no build.
    void unreserve(const std::string& name);
    /// Frees the slot of a build that ended.
    void release(const std::string& name, std::int64_t build);

    /// The link of `name`, or null.
    [[nodiscard]] std::shared_ptr<Link> link(const std::string& name);

    /// The dispatcher's view: every worker with its free slots.
    [[nodiscard]] std::vector<WorkerLoad> loads();
    /// True when some worker has a free slot and takes builds.
    [[nodiscard]] bool any_free_slot();
    [[nodiscard]] std::vector<WorkerView> views();
    [[nodiscard]] std::optional<WorkerView> view(const std::string& name);
    /// Workers connected over the network (not the master's own local workers).
    [[nodiscard]] int remote_count();

private:
    struct Worker {
        std::string worker_class;
        int max_builds = 1;
        bool local = false;
        bool draining = false;
        bool shutting_down = false;
        int reserved = 0;
        std::shared_ptr<Link> link;
        std::set<std::int64_t> builds;
        std::chrono::steady_clock::time_point last_seen;
    };
    [[nodiscard]] WorkerView to_view(const std::string& name, const Worker& worker) const;
    // Whether `name` (connected as `worker`) may be given a new build (under mutex_).
    [[nodiscard]] bool accepting(const std::string& name, const Worker& worker) const;

    std::mutex mutex_;
    std::map<std::string, Worker> workers_;
    std::set<std::string> paused_; ///< by name, connected or not
};

} // namespace ci::master
