#include "master/triggers.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/git/merge.h>

namespace ci::master {

std::optional<std::string>
merge_target_of(const config::Config& config, const store::BuildRequest& request, bool is_tag) {
    if (const auto& pinned = request.request.pinned_merge) {
        return pinned->target.empty() ? std::nullopt : std::optional(pinned->target);
    }
    const auto& builder = config.builders.at(request.request.builder);
    const auto& repository = config.repositories.at(builder.repository);
    const auto branch =
        request.request.branch.empty() ? repository.default_branch : request.request.branch;
    return git::merge_target_for(branch, is_tag, builder.merge_target, repository.default_branch);
}

std::vector<sched::RequestBuild> triggered_requests(const config::Config& config,
                                                    const store::BuildRequest& source,
                                                    const config::Trigger& trigger,
                                                    int step,
                                                    std::int64_t build,
                                                    const std::string& branch_tip,
                                                    const sched::PinnedMerge& pinned) {
    std::vector<sched::RequestBuild> out;
    out.reserve(trigger.builders.size());
    for (const auto& builder : trigger.builders) {
        sched::RequestBuild request;
        // The triggerable scheduler that offers it (check-config made sure there is one).
        for (const auto& [name, scheduler] : config.schedulers) {
            if (scheduler.type == config::Scheduler::Type::Triggerable &&
                std::ranges::find(scheduler.builders, builder) != scheduler.builders.end()) {
                request.scheduler = name;
                break;
            }
        }
        request.builder = builder;
        request.repository = source.request.repository;
        request.branch = source.request.branch;
        request.revision = branch_tip;
        request.change_ids = source.request.change_ids;
        request.reason =
            fmt::format("triggered by build {} ({}, step {})", build, source.request.builder, step);
        request.properties = source.request.properties;
        request.pinned_merge = pinned;
        request.triggered_by_request = source.id;
        request.triggered_by_step = step;
        out.push_back(std::move(request));
    }
    return out;
}

std::optional<protocol::Triggered> wait_answer(std::int64_t build,
                                               int step,
                                               const std::vector<std::int64_t>& requests,
                                               const std::map<std::int64_t, TriggeredEnd>& ends) {
    protocol::Triggered answer{build, step, BuildResult::Success, ""};
    for (const auto request : requests) {
        const auto end = ends.find(request);
        if (end == ends.end()) {
            return std::nullopt;
        }
        answer.result = worse(answer.result, end->second.result);
        answer.description += fmt::format(
            "{}{}: {} (request {}{})",
            answer.description.empty() ? "" : "; ",
            end->second.builder,
            to_string(end->second.result),
            request,
            end->second.build != 0 ? fmt::format(", build {}", end->second.build) : std::string());
    }
    return answer;
}

void Triggers::ask(const std::string& worker, std::int64_t build, int step) {
    const auto running = p_.running.builds();
    const auto found = std::ranges::find(running, build, &store::Build::id);
    if (found == running.end()) {
        return; // it ended meanwhile: nobody waits for an answer
    }
    const auto builder = p_.config.builders.find(found->builder);
    const config::Step* config_step = nullptr;
    if (builder != p_.config.builders.end() && step >= 1 &&
        static_cast<std::size_t>(step) <= builder->second.steps.size()) {
        config_step = &builder->second.steps[static_cast<std::size_t>(step) - 1];
    }
    if (config_step == nullptr || !config_step->trigger) {
        answer(worker,
               {build,
                step,
                BuildResult::Exception,
                fmt::format("step {} of builder {} is not a trigger step", step, found->builder)});
        return;
    }
    if (builder->second.repository.empty()) {
        // check-config refuses this; a Config built by hand may not have been checked.
        answer(worker,
               {build,
                step,
                BuildResult::Exception,
                "a builder without a repository cannot trigger builds"});
        return;
    }
    p_.writes.post(
        fmt::format("the builds of trigger step {} of build {}", step, build),
        [this, worker, record = *found, step, trigger = *config_step->trigger](
            store::Store& store) { return queue(store, worker, record, step, trigger); });
}

Status Triggers::queue(store::Store& store,
                       const std::string& worker,
                       const store::Build& build,
                       int step,
                       const config::Trigger& trigger) {
    auto source = store.request(build.request_id);
    if (!source) {
        return fail(source.error());
    }
    if (!*source) {
        answer(worker,
               {build.id,
                step,
                BuildResult::Exception,
                fmt::format("its build request {} is not stored", build.request_id)});
        return {};
    }
    const auto& request = **source;
    bool is_tag = false;
    if (!request.request.change_ids.empty() && !request.request.pinned_merge) {
        auto change = store.change(request.request.change_ids.back());
        if (!change) {
            return fail(change.error());
        }
        is_tag = *change && (*change)->is_tag;
    }
    // The merge the build tested: its target at the commit its checkout recorded.
    const auto target = merge_target_of(p_.config, request, is_tag);
    const sched::PinnedMerge pinned = request.request.pinned_merge.value_or(
        sched::PinnedMerge{target.value_or(""), target ? build.target_tip : ""});
    const auto wanted =
        triggered_requests(p_.config, request, trigger, step, build.id, build.branch_tip, pinned);
    const auto now = p_.clock.now();
    // Their requests' reports (a pending commit status) are stored with them.
    auto triggered =
        store.trigger(request.id, step, wanted, now, [&](const store::BuildRequest& r) {
            return p_.reports.request_outbox(r);
        });
    if (!triggered) {
        return fail(triggered.error());
    }
    std::string names;
    for (std::size_t i = 0; i < wanted.size() && i < triggered->request_ids.size(); ++i) {
        names += fmt::format("{}{} (request {})",
                             names.empty() ? "" : ", ",
                             wanted[i].builder,
                             triggered->request_ids[i]);
    }
    if (triggered->created) {
        std::vector<store::BuildRequest> queued;
        for (std::size_t i = 0; i < wanted.size() && i < triggered->request_ids.size(); ++i) {
            queued.push_back(store::BuildRequest{
                triggered->request_ids[i], wanted[i], store::RequestState::Pending, now, {}, {}});
        }
        log::info("build {} (step {}) triggered {}, at {} merged with {}",
                  build.id,
                  step,
                  names,
                  build.branch_tip,
                  pinned.target.empty() ? "nothing" : pinned.target + " " + pinned.target_revision);
        p_.reports.requested(queued);
        if (p_.wake) {
            p_.wake();
        }
    } else {
        log::info("build {} (step {}): its request triggered {} already (a retry); nothing new",
                  build.id,
                  step,
                  names);
    }
    if (!trigger.wait) {
        answer(
            worker,
            {build.id,
             step,
             BuildResult::Success,
             fmt::format("{} {}", triggered->created ? "requested" : "requested before:", names)});
        return {};
    }
    {
        // Registered before the store is read: an end stored after this read comes through
        // ended() (on this thread, later); one stored before it is in what is read below.
        const std::lock_guard lock(mutex_);
        const bool known = std::ranges::any_of(
            waiting_, [&](const Waiting& w) { return w.build == build.id && w.step == step; });
        if (!known) {
            waiting_.push_back(Waiting{build.id, step, worker, triggered->request_ids, {}});
        }
    }
    for (const auto id : triggered->request_ids) {
        auto stored = store.request(id);
        if (!stored) {
            return fail(stored.error());
        }
        if (!*stored) {
            continue;
        }
        const auto state = (*stored)->state;
        const auto& name = (*stored)->request.builder;
        if (state == store::RequestState::Cancelled) {
            ended(TriggeredEnd{id, name, 0, BuildResult::Cancelled});
        } else if (state == store::RequestState::Completed) {
            store::BuildQuery query;
            query.request = id;
            query.limit = 1;
            auto builds = store.builds(query);
            if (!builds) {
                return fail(builds.error());
            }
            if (!builds->empty() && builds->front().result) {
                ended(TriggeredEnd{id, name, builds->front().id, *builds->front().result});
            }
        }
    }
    return {};
}

void Triggers::ended(const TriggeredEnd& end) {
    std::vector<std::pair<std::string, protocol::Triggered>> answers;
    {
        const std::lock_guard lock(mutex_);
        std::erase_if(waiting_, [&](Waiting& waiting) {
            if (std::ranges::find(waiting.requests, end.request) == waiting.requests.end()) {
                return false;
            }
            waiting.ends.emplace(end.request, end);
            auto done = wait_answer(waiting.build, waiting.step, waiting.requests, waiting.ends);
            if (!done) {
                return false;
            }
            answers.emplace_back(waiting.worker, std::move(*done));
            return true;
        });
    }
    for (const auto& [worker, triggered] : answers) {
        answer(worker, triggered);
    }
}

void Triggers::build_ended(std::int64_t build) {
    const std::lock_guard lock(mutex_);
    std::erase_if(waiting_, [&](const Waiting& waiting) { return waiting.build == build; });
}

void Triggers::answer(const std::string& worker, const protocol::Triggered& triggered) {
    if (!p_.running.runs_on(triggered.build, worker)) {
        return; // the build ended (or moved): nobody waits for this answer
    }
    if (auto link = p_.workers.link(worker)) {
        link->send(triggered);
    }
}

} // namespace ci::master
