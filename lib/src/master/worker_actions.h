#pragma once

// What a user may do to a worker: pause it, resume it, shut it down gracefully. One function
// that both the JSON API (routes_workers.cpp) and the web UI's form routes call, so that both
// check, act and log the same way.

#include <optional>
#include <string>
#include <string_view>

#include <ci/store/store.h>

#include "master/services.h"

namespace ci::master {

enum class WorkerAction {
    Pause,    ///< no new builds; running ones go on (kept across reconnects, not restarts)
    Resume,   ///< undoes Pause
    Shutdown, ///< no new builds; the worker exits once its running builds end
};

/// "pause", "resume", "shutdown" -> the action; nullopt for any other word.
[[nodiscard]] std::optional<WorkerAction> parse_worker_action(std::string_view word);

/// How act_on_worker() ended: an HTTP status (200 done, 404 no such worker, 409 not possible
/// now, 500 the store failed) and what to tell the user.
struct WorkerActionResult {
    int status = 200;
    std::string message;
};

/// Does `action` to worker `name` for user `who` (logged in the master's log). A worker is
/// known when it is connected, in the store's workers (it connected once) or the worker of an
/// EC2 instance; an unknown one is a 404. Shutdown needs the worker connected (409 otherwise);
/// Resume of a worker shutting down is a 409 (its shutdown cannot be taken back). Reads the
/// store: call it on a read thread (Services::reads).
[[nodiscard]] WorkerActionResult act_on_worker(Services& services,
                                               store::Store& store,
                                               const std::string& name,
                                               WorkerAction action,
                                               const std::string& who);

} // namespace ci::master
