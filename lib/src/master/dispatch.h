#pragma once

// Which worker runs which pending build request: a pure function of the queue, the workers'
// loads and the locks in use, so that the rules are tested without sockets or threads.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ci/config/config.h>

namespace ci::master {

// A worker as the dispatcher sees it.
struct WorkerLoad {
    std::string name;
    std::string worker_class;
    int max_builds = 1;
    int running = 0;
    bool accepting = true; // connected and not draining
};

// A pending build request.
struct QueuedRequest {
    std::int64_t id = 0;
    std::string builder;
};

struct Assignment {
    std::int64_t request = 0;
    std::string worker;
    friend bool operator==(const Assignment&, const Assignment&) = default;
};

// Assigns requests, oldest first, while workers and locks allow: a request goes to a worker of
// one of its builder's classes that has a free slot (max_builds), choosing the least busy one
// (fewest running builds, then the lowest share of its slots, then the name), and only when
// every counting lock its builder names has room (locks_in_use + 1 <= max_count, counted by
// lock_key: a lock of scope worker on that worker alone). A request that cannot run now does
// not hold up later ones that can. Requests of unknown builders are left alone.
[[nodiscard]] std::vector<Assignment> assign(const std::vector<QueuedRequest>& queue,
                                             std::vector<WorkerLoad> workers,
                                             std::map<std::string, int> locks_in_use,
                                             const config::Config& config);

} // namespace ci::master
