#include "master/dispatcher.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/build/results.h>
#include <ci/core/log.h>

#include "master/dispatch.h"
#include "master/triggers.h"

namespace ci::master {

std::string web_url(const config::Config& config, std::uint16_t bound_port) {
    if (!config.buildmaster.url.empty()) {
        return config.buildmaster.url;
    }
    const auto port = config.buildmaster.web_port != 0 ? config.buildmaster.web_port : bound_port;
    return fmt::format("http://{}:{}", config.buildmaster.host, port);
}

build::BuildSpec build_spec(const config::Config& config,
                            const store::BuildRequest& request,
                            std::int64_t build_id,
                            bool is_tag,
                            const std::string& master_url) {
    const auto& builder = config.builders.at(request.request.builder);
    build::BuildSpec spec;
    spec.build_id = build_id;
    spec.builder = request.request.builder;
    spec.timeout = builder.timeout;
    spec.properties = request.request.properties;
    spec.steps = build::step_specs(builder);
    spec.master_url = master_url;
    if (builder.repository.empty()) {
        spec.results_url = build::results_url(spec.master_url, spec.builder, {}, build_id);
        return spec; // no checkout: no URL, branch or merge
    }
    const auto& repository = config.repositories.at(builder.repository);
    spec.repository = builder.repository;
    spec.url = repository.url;
    spec.branch =
        request.request.branch.empty() ? repository.default_branch : request.request.branch;
    spec.results_url = build::results_url(spec.master_url, spec.builder, spec.branch, build_id);
    spec.is_tag = is_tag;
    spec.revision = request.request.revision;
    spec.merge_target = merge_target_of(config, request, is_tag);
    if (const auto& pinned = request.request.pinned_merge; pinned && spec.merge_target) {
        spec.target_revision = pinned->target_revision;
    }
    return spec;
}

Dispatcher::~Dispatcher() {
    stop();
}

void Dispatcher::start() {
    thread_ = std::thread([this] { run(); });
}

void Dispatcher::wake() {
    {
        const std::lock_guard lock(mutex_);
        wanted_ = true;
    }
    wake_.notify_one();
}

void Dispatcher::stop() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Dispatcher::set_drained(bool drained) {
    {
        const std::lock_guard passing(pass_mutex_);
        drained_ = drained;
    }
    if (!drained) {
        wake();
    }
}

void Dispatcher::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        // A periodic pass as well: a request whose store write raced a wake-up is never stuck.
        wake_.wait_for(lock, std::chrono::seconds(5), [&] { return wanted_ || stopping_; });
        if (stopping_) {
            return;
        }
        wanted_ = false;
        lock.unlock();
        {
            const std::lock_guard passing(pass_mutex_);
            if (!drained_) {
                pass();
            }
        }
        lock.lock();
    }
}

void Dispatcher::pass() {
    // No free slot anywhere: the queue need not be read (it can be long when no worker is up).
    if (!p_.workers.any_free_slot()) {
        return;
    }
    auto pending = p_.store.requests(store::RequestState::Pending);
    if (!pending) {
        ++p_.metrics.store_errors;
        log::error("dispatch: {}", pending.error().message);
        return;
    }
    if (pending->empty()) {
        return;
    }
    std::vector<QueuedRequest> queue;
    queue.reserve(pending->size());
    for (const auto& request : *pending) {
        queue.push_back(QueuedRequest{request.id, request.request.builder});
    }
    for (const auto& assignment : assign(queue, p_.workers.loads(), p_.locks.in_use(), p_.config)) {
        {
            const std::lock_guard lock(mutex_);
            if (stopping_) {
                return;
            }
        }
        const auto found =
            std::ranges::find(*pending, assignment.request, &store::BuildRequest::id);
        start_build(*found, assignment.worker);
    }
}

void Dispatcher::start_build(const store::BuildRequest& queued, const std::string& worker) {
    const auto& builder_name = queued.request.builder;
    const auto& builder = p_.config.builders.at(builder_name);
    // Slot and locks first, in memory: the worker may have left or filled up since the pass
    // began, and a lock may have been taken.
    if (!p_.locks.try_acquire(builder.locks, worker)) {
        return;
    }
    if (!p_.workers.reserve(worker)) {
        p_.locks.release(builder.locks, worker);
        return;
    }
    const auto give_back = [&] {
        p_.workers.unreserve(worker);
        p_.locks.release(builder.locks, worker);
    };
    // Claiming may collapse this request with newer ones of the same branch: the claimed one is
    // what runs.
    auto claimed = p_.store.claim({builder_name}, p_.name);
    if (!claimed || !*claimed) {
        give_back();
        if (!claimed) {
            ++p_.metrics.store_errors;
            log::error("dispatch: {}", claimed.error().message);
        }
        return;
    }
    const auto& request = **claimed;
    const auto started = p_.clock.now();
    // The start's reports are stored with it (a kill -9 cannot keep one without the other).
    auto build_id = [&] {
        const GridCache::Write grid(p_.grid); // a new build in the grid
        return p_.store.start_build(
            request.id, builder_name, worker, started, [&](std::int64_t build) {
                return p_.reports.start_outbox(request, build);
            });
    }();
    if (!build_id) {
        give_back();
        ++p_.metrics.store_errors;
        log::error("dispatch: {}", build_id.error().message);
        if (auto status = p_.store.finish(request.id, store::RequestState::Pending); !status) {
            // Left claimed: the next start of the master queues it again (recover_unfinished).
            log::error("dispatch: request {} stays claimed until the master restarts: {}",
                       request.id,
                       status.error().message);
        }
        return;
    }
    bool is_tag = false;
    if (!request.request.change_ids.empty()) {
        if (auto change = p_.store.change(request.request.change_ids.back()); change && *change) {
            is_tag = (*change)->is_tag;
        }
    }
    protocol::StartBuild start{build_spec(
        p_.config, request, *build_id, is_tag, p_.web_url ? p_.web_url() : web_url(p_.config))};
    const auto view = p_.workers.view(worker);
    p_.running.add(
        store::Build{*build_id, request.id, builder_name, worker, started, {}, {}, {}, {}, {}},
        builder.locks,
        retries_spent(request.id),
        BuildLabels{
            builder_name,
            view ? view->worker_class : std::string(),
            std::string(branch_type(p_.config, builder.repository, start.spec.branch, is_tag))});
    // Its start is stored: reported now, before anything below may end it.
    p_.reports.started(request, *build_id);
    auto link = p_.workers.attach(worker, *build_id);
    if (!link) {
        p_.coordinator.finish(*build_id, BuildResult::Retry, "its worker left before it started");
        return;
    }
    // A spec no worker accepts would be refused (the connection dropped), the build retried,
    // and the request sent again without end (issue 14): it cannot run, whatever the worker.
    if (const auto size = protocol::encode(start).size(); size > protocol::max_line) {
        p_.coordinator.finish(
            *build_id,
            BuildResult::Exception,
            fmt::format("its build spec is {} bytes, more than a worker protocol line may be ({})",
                        size,
                        protocol::max_line));
        return;
    }
    p_.coordinator.starting(start.spec);
    log::info("build {} ({} on {}, request {}, branch {}) starts on {}",
              *build_id,
              builder_name,
              start.spec.url,
              request.id,
              start.spec.branch,
              worker);
    link->send(start);
}

bool Dispatcher::retries_spent(std::int64_t request) {
    // The request's earlier builds that ended `retry` (the build just started is not finished).
    const int allowed = p_.config.buildmaster.max_retries;
    store::BuildQuery query;
    query.request = request;
    query.limit = allowed + 2;
    auto builds = p_.store.builds(query);
    if (!builds) {
        ++p_.metrics.store_errors;
        log::error("dispatch: {}", builds.error().message);
        return false; // a retry too many rather than a build refused for a read that failed
    }
    const auto retried =
        std::ranges::count(*builds, std::optional(BuildResult::Retry), &store::Build::result);
    return retried >= allowed;
}

} // namespace ci::master
