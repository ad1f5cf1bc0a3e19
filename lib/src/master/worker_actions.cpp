#include "master/worker_actions.h"

#include <algorithm>

#include <fmt/format.h>

namespace ci::master {

std::optional<WorkerAction> parse_worker_action(std::string_view word) {
    if (word == "pause") {
        return WorkerAction::Pause;
    }
    if (word == "resume") {
        return WorkerAction::Resume;
    }
    if (word == "shutdown") {
        return WorkerAction::Shutdown;
    }
    return std::nullopt;
}

WorkerActionResult act_on_worker(Services& s,
                                 store::Store& store,
                                 const std::string& name,
                                 WorkerAction action,
                                 const std::string& who) {
    const auto live = s.workers.view(name);
    if (!live && (s.ec2 == nullptr || !s.ec2->instance_of(name))) {
        auto stored = store.workers();
        if (!stored) {
            return {500, stored.error().message};
        }
        if (std::ranges::find(*stored, name, &store::WorkerRecord::name) == stored->end()) {
            return {404, fmt::format("no worker {}", name)};
        }
    }
    switch (action) {
    case WorkerAction::Pause:
        (void)s.coordinator.pause_worker(name, true, who);
        return {200, fmt::format("worker {} is paused: it gets no new builds", name)};
    case WorkerAction::Resume:
        if (live && live->shutting_down) {
            return {409, fmt::format("worker {} is shutting down: it cannot be resumed", name)};
        }
        (void)s.coordinator.pause_worker(name, false, who);
        return {200, fmt::format("worker {} takes builds", name)};
    case WorkerAction::Shutdown:
        switch (s.coordinator.shut_down_worker(name, who)) {
        case WorkerRegistry::ShutDown::NotConnected:
            return {409, fmt::format("worker {} is not connected", name)};
        case WorkerRegistry::ShutDown::Started:
        case WorkerRegistry::ShutDown::Already:
            break;
        }
        return {200, fmt::format("worker {} is shutting down: it exits once its builds end", name)};
    }
    return {500, "unknown worker action"};
}

} // namespace ci::master
