#include "master/local_worker.h"

#include <unistd.h>

#include <fmt/format.h>

#include <ci/master/master.h>

#include "worker/reported_build.h"

namespace ci::master {

Result<std::map<std::string, RunAs>> local_step_users(const config::Config& config) {
    std::map<std::string, RunAs> users;
    for (const auto& [class_name, worker_class] : config.slaves) {
        const auto* local = std::get_if<config::LocalWorkers>(&worker_class);
        if (local == nullptr || local->step_user.empty()) {
            continue;
        }
        const auto key = fmt::format("slaves.{}.step_user", class_name);
        auto user = lookup_user(local->step_user);
        if (!user) {
            return std::unexpected(user.error().with_context(key));
        }
        if (::geteuid() != 0) {
            return fail(ErrorCode::PermissionDenied,
                        fmt::format("{}: the master must run as root to run steps as '{}' (it "
                                    "runs as uid {})",
                                    key,
                                    local->step_user,
                                    ::geteuid()));
        }
        users.emplace(class_name, std::move(*user));
    }
    return users;
}

void LocalWorker::send(const protocol::Message& message) {
    if (const auto* start = std::get_if<protocol::StartBuild>(&message)) {
        const std::lock_guard lock(mutex_);
        std::erase_if(jobs_, [](const auto& entry) { return entry.second.done->load(); });
        const auto id = start->spec.build_id;
        if (jobs_.contains(id)) {
            return; // already running: a second start of one build is ignored, never a 2nd run
        }
        auto spec = start->spec;
        auto done = std::make_shared<std::atomic<bool>>(false);
        jobs_.emplace(id,
                      Job{std::jthread([this, spec = std::move(spec), done](std::stop_token stop) {
                              run(spec, std::move(stop));
                              *done = true;
                          }),
                          done});
    } else if (const auto* stop = std::get_if<protocol::StopBuild>(&message)) {
        const std::lock_guard lock(mutex_);
        if (auto found = jobs_.find(stop->build); found != jobs_.end()) {
            found->second.thread.request_stop();
        }
    } else if (worker::MasterAnswers::is_answer(message)) {
        answers_.deliver(message);
    }
}

void LocalWorker::close() {
    std::map<std::int64_t, Job> jobs;
    {
        const std::lock_guard lock(mutex_);
        jobs.swap(jobs_);
    }
    for (auto& [id, job] : jobs) {
        job.thread.request_stop();
    }
    jobs.clear(); // joins
}

void LocalWorker::run(const build::BuildSpec& spec, std::stop_token stop) {
    (void)worker::run_reported_build(
        spec,
        options_,
        [this](protocol::Message message) { events_.message(name_, this, std::move(message)); },
        std::move(stop),
        &answers_);
}

} // namespace ci::master
