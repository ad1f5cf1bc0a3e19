#include "ci/master/master.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/build/runner.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/git/merge.h>
#include <ci/master/worker.h>
#include <ci/sched/poller.h>

#include "master/dispatch.h"
#include "master/impl.h"
#include "master/worker_server.h"

namespace ci::master {

using detail::MasterState;

namespace {

// An in-process worker: each build runs on a thread of its own, reporting through the same
// messages a remote worker sends.
class LocalLink final : public Link {
public:
    LocalLink(MasterState& master, std::string name, build::RunnerOptions options)
        : master_(master), name_(std::move(name)), options_(std::move(options)) {}

    ~LocalLink() override { close(); }

    void send(const protocol::Message& message) override {
        if (const auto* start = std::get_if<protocol::StartBuild>(&message)) {
            const std::lock_guard lock(mutex_);
            reap_locked();
            auto spec = start->spec;
            const auto id = spec.build_id;
            auto done = std::make_shared<std::atomic<bool>>(false);
            threads_.emplace(
                id,
                Job{std::jthread([this, spec = std::move(spec), done](std::stop_token stop) {
                        run(spec, stop);
                        *done = true;
                    }),
                    done});
        } else if (const auto* stop = std::get_if<protocol::StopBuild>(&message)) {
            const std::lock_guard lock(mutex_);
            if (auto found = threads_.find(stop->build); found != threads_.end()) {
                found->second.thread.request_stop();
            }
        }
    }

    // Stops every build and waits for them (their ends reach the master first).
    void close() override {
        std::map<std::int64_t, Job> jobs;
        {
            const std::lock_guard lock(mutex_);
            jobs.swap(threads_);
        }
        for (auto& [id, job] : jobs) {
            job.thread.request_stop();
        }
        jobs.clear(); // joins
    }

private:
    struct Job {
        std::jthread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };

    void reap_locked() {
        std::erase_if(threads_, [](const auto& entry) { return entry.second.done->load(); });
    }

    void run(const build::BuildSpec& spec, std::stop_token stop) {
        (void)run_reported_build(
            spec,
            options_,
            [this](protocol::Message message) {
                master_.on_message(name_, this, std::move(message));
            },
            stop);
    }

    MasterState& master_;
    std::string name_;
    build::RunnerOptions options_;
    std::mutex mutex_;
    std::map<std::int64_t, Job> threads_;
};

std::string worker_state_text(const Worker& worker) {
    if (worker.draining) {
        return "draining";
    }
    return worker.builds.empty() ? "idle" : "building";
}

} // namespace

namespace detail {

Status MasterState::start_services() {
    auto opened = store::open_sqlite(config.buildmaster.state);
    if (!opened) {
        return fail(opened.error());
    }
    store = std::move(*opened);
    if (auto recovered = store->recover_unfinished(now()); !recovered) {
        return fail(recovered.error());
    } else if (*recovered > 0) {
        log::warn("{} build(s) left unfinished by the previous master end as retry; their "
                  "requests are queued again",
                  *recovered);
    }
    if (auto seen = store->deliveries_since(now() - std::chrono::hours(24 * 7)); seen) {
        for (auto& id : *seen) {
            remember_delivery(id);
        }
    } else {
        return fail(seen.error());
    }
    auto logs = store::LogWriter::open(config.buildmaster.state);
    if (!logs) {
        return fail(logs.error());
    }
    log_writer = std::move(*logs);
    store::IngestOptions ingest_options;
    ingest_options.on_requests = [this](const std::vector<std::int64_t>&) { wake_dispatcher(); };
    auto ingest = store::Ingestor::start(config, *store, *clock, ingest_options);
    if (!ingest) {
        return fail(ingest.error());
    }
    ingestor = std::move(*ingest);

    for (const auto& [class_name, worker_class] : config.slaves) {
        if (const auto* fixed = std::get_if<config::StaticWorkers>(&worker_class)) {
            for (std::size_t i = 0; i < fixed->passwords.size(); ++i) {
                static_workers.emplace(
                    fmt::format("{}/{}", class_name, i),
                    StaticWorker{class_name, fixed->passwords[i], fixed->max_builds});
            }
        } else if (std::holds_alternative<config::Ec2Workers>(worker_class)) {
            log::warn("slaves.{}: EC2 latent workers are not started by this master yet; "
                      "builders of this class wait for other workers",
                      class_name);
        }
    }

    auto workers_server = WorkerServer::start(
        *this, options.listen_address, config.buildmaster.worker_port, options.heartbeat);
    if (!workers_server) {
        return fail(workers_server.error());
    }
    worker_server = std::move(*workers_server);

    http::ServerOptions http_options;
    http_options.address = options.listen_address;
    http_options.port = config.buildmaster.web_port;
    http_options.threads = std::max(1U, options.http_threads);
    auto server =
        http::Server::start(http_options, [this](http::ServerRequest& request, http::Reply reply) {
            handle_http(request, std::move(reply));
        });
    if (!server) {
        return fail(server.error());
    }
    http = std::move(*server);

    // Local workers last: they may start building at once.
    for (const auto& [class_name, worker_class] : config.slaves) {
        if (const auto* local = std::get_if<config::LocalWorkers>(&worker_class)) {
            for (int i = 0; i < local->count; ++i) {
                const auto name = fmt::format("{}/{}", class_name, i);
                build::RunnerOptions runner;
                runner.work_root = options.data_dir / "work" / fmt::format("{}-{}", class_name, i);
                runner.cache_dir = options.data_dir / "cache";
                runner.git_token = options.git_token;
                runner.ssh_key = options.ssh_key;
                worker_connected(name,
                                 class_name,
                                 local->max_builds,
                                 true,
                                 std::make_shared<LocalLink>(*this, name, runner));
            }
        }
    }
    dispatcher = std::thread([this] { run_dispatcher(); });
    housekeeper = std::thread([this] { run_housekeeper(); });
    if (std::ranges::any_of(config.repositories, [](const auto& entry) {
            return entry.second.poll_interval.has_value();
        })) {
        poller = std::thread([this] { run_poller(); });
    }
    return {};
}

void MasterState::wake_dispatcher() {
    {
        const std::lock_guard lock(mutex);
        dispatch_needed = true;
    }
    changed.notify_all();
}

void MasterState::run_dispatcher() {
    std::unique_lock lock(mutex);
    for (;;) {
        // A periodic pass as well: a request whose store write raced a wake-up is never stuck.
        changed.wait_for(
            lock, std::chrono::seconds(5), [&] { return dispatch_needed || stopping; });
        if (stopping) {
            return;
        }
        dispatch_needed = false;
        if (accepting_builds) {
            dispatch_locked();
        }
    }
}

// Polls the refs of repositories with a poll_interval (masters that get no webhooks). The first
// reading after a start is the baseline: only later moves are changes.
void MasterState::run_poller() {
    struct Polled {
        std::chrono::steady_clock::time_point due;
        std::optional<std::map<std::string, std::string>> refs;
    };
    std::map<std::string, Polled> polled;
    for (const auto& [name, repository] : config.repositories) {
        if (repository.poll_interval) {
            polled[name].due = std::chrono::steady_clock::now();
        }
    }
    std::unique_lock lock(mutex);
    for (;;) {
        auto next = std::chrono::steady_clock::time_point::max();
        for (const auto& [name, state] : polled) {
            next = std::min(next, state.due);
        }
        if (changed.wait_until(lock, next, [&] { return stopping; })) {
            return;
        }
        for (auto& [name, state] : polled) {
            if (state.due > std::chrono::steady_clock::now()) {
                continue;
            }
            const auto& repository = config.repositories.at(name);
            state.due = std::chrono::steady_clock::now() + *repository.poll_interval;
            lock.unlock();
            auto refs = sched::list_remote_refs(repository.url);
            lock.lock();
            if (stopping) {
                return;
            }
            if (!refs) {
                log::warn("poll {}: {}", name, refs.error().message);
                continue;
            }
            if (state.refs) {
                auto events = sched::poll_events(name, *state.refs, *refs, now());
                // Not under the master's lock: submit() may write at once and wake the
                // dispatcher, which takes it.
                lock.unlock();
                for (auto& event : events) {
                    ingestor->submit(std::move(event), {}, [name](Result<store::Receipt> receipt) {
                        if (!receipt) {
                            log::error("poll {}: {}", name, receipt.error().message);
                        }
                    });
                }
                lock.lock();
            }
            state.refs = std::move(*refs);
        }
    }
}

// Writes the workers' state now and then (last seen), for the API after a restart.
void MasterState::run_housekeeper() {
    std::unique_lock lock(mutex);
    while (!changed.wait_for(lock, std::chrono::seconds(30), [&] { return stopping; })) {
        for (const auto& [name, worker] : workers) {
            (void)store->save_worker(
                store::WorkerRecord{name, worker.worker_class, worker_state_text(worker), now()});
        }
    }
}

void MasterState::dispatch_locked() {
    // No free slot anywhere: the queue need not be read (it can be long when no worker is up).
    if (std::ranges::none_of(workers, [](const auto& entry) {
            const auto& worker = entry.second;
            return !worker.draining && static_cast<int>(worker.builds.size()) < worker.max_builds;
        })) {
        return;
    }
    auto pending = store->requests(store::RequestState::Pending);
    if (!pending) {
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
    std::vector<WorkerLoad> loads;
    for (const auto& [name, worker] : workers) {
        loads.push_back(WorkerLoad{name,
                                   worker.worker_class,
                                   worker.max_builds,
                                   static_cast<int>(worker.builds.size()),
                                   !worker.draining});
    }
    for (const auto& assignment : assign(queue, std::move(loads), locks_in_use, config)) {
        const auto found =
            std::ranges::find(*pending, assignment.request, &store::BuildRequest::id);
        const auto& builder_name = found->request.builder;
        // Claiming may collapse this request with newer ones of the same branch: the claimed one
        // is what runs.
        auto claimed = store->claim({builder_name}, options.dispatcher_name);
        if (!claimed) {
            log::error("dispatch: {}", claimed.error().message);
            return;
        }
        if (!*claimed) {
            continue;
        }
        const auto& request = **claimed;
        auto& worker = workers.at(assignment.worker);
        const auto& builder = config.builders.at(builder_name);
        const auto started = now();
        auto build_id = store->start_build(request.id, builder_name, worker.name, started);
        if (!build_id) {
            log::error("dispatch: {}", build_id.error().message);
            (void)store->finish(request.id, store::RequestState::Pending);
            return;
        }
        const auto& repository = config.repositories.at(builder.repository);
        bool is_tag = false;
        if (!request.request.change_ids.empty()) {
            if (auto change = store->change(request.request.change_ids.back()); change && *change) {
                is_tag = (*change)->is_tag;
            }
        }
        build::BuildSpec spec;
        spec.build_id = *build_id;
        spec.builder = builder_name;
        spec.repository = builder.repository;
        spec.url = repository.url;
        spec.branch =
            request.request.branch.empty() ? repository.default_branch : request.request.branch;
        spec.is_tag = is_tag;
        spec.revision = request.request.revision;
        spec.merge_target = git::merge_target_for(
            spec.branch, is_tag, builder.merge_target, repository.default_branch);
        spec.timeout = builder.timeout;
        spec.properties = request.request.properties;
        spec.steps = build::step_specs(builder);

        Running run;
        run.build = store::Build{
            *build_id, request.id, builder_name, worker.name, started, {}, {}, {}, {}, {}};
        run.locks = builder.locks;
        run.started = std::chrono::steady_clock::now();
        for (const auto& lock_name : run.locks) {
            ++locks_in_use[lock_name];
        }
        running.emplace(*build_id, std::move(run));
        worker.builds.insert(*build_id);
        log::info("build {} ({} on {}, request {}, branch {}) starts on {}",
                  *build_id,
                  builder_name,
                  repository.url,
                  request.id,
                  spec.branch,
                  worker.name);
        worker.link->send(protocol::StartBuild{std::move(spec)});
    }
}

void MasterState::worker_connected(const std::string& name,
                                   const std::string& worker_class,
                                   int max_builds,
                                   bool local,
                                   std::shared_ptr<Link> link) {
    std::shared_ptr<Link> replaced;
    {
        const std::lock_guard lock(mutex);
        if (stopping) {
            link->close();
            return;
        }
        if (auto old = workers.find(name); old != workers.end()) {
            // The same worker again (it restarted, or its old connection is half-open): the
            // new connection wins, and whatever the old one was running is retried.
            log::warn("worker {} connected again; its previous connection is dropped", name);
            replaced = old->second.link;
            const auto builds = old->second.builds;
            for (const auto build : builds) {
                finish_build_locked(build, "retry", "its worker connected again");
            }
            workers.erase(old);
        }
        Worker worker;
        worker.name = name;
        worker.worker_class = worker_class;
        worker.max_builds = max_builds;
        worker.local = local;
        worker.link = std::move(link);
        worker.last_seen = std::chrono::steady_clock::now();
        (void)store->save_worker(store::WorkerRecord{name, worker_class, "idle", now()});
        workers.emplace(name, std::move(worker));
        dispatch_needed = true;
    }
    changed.notify_all();
    if (replaced) {
        replaced->close();
    }
}

void MasterState::worker_lost(const std::string& name, const Link* link, const std::string& why) {
    {
        const std::lock_guard lock(mutex);
        const auto found = workers.find(name);
        if (found == workers.end() || found->second.link.get() != link) {
            return; // an old connection of a worker that connected again
        }
        const auto builds = found->second.builds;
        if (!builds.empty()) {
            log::warn("worker {} lost ({}) during {} build(s): they end as retry and their "
                      "requests are queued again",
                      name,
                      why,
                      builds.size());
        } else {
            log::info("worker {} disconnected ({})", name, why);
        }
        for (const auto build : builds) {
            finish_build_locked(build, "retry", fmt::format("worker {} lost: {}", name, why));
        }
        (void)store->save_worker(
            store::WorkerRecord{name, found->second.worker_class, "lost", now()});
        workers.erase(found);
        dispatch_needed = true;
    }
    changed.notify_all();
}

void MasterState::on_message(const std::string& worker_name,
                             const Link* link,
                             protocol::Message message) {
    if (std::holds_alternative<protocol::LogChunk>(message)) {
        log_writer->wait_for_room(); // outside the lock: the disk may be behind
    } else if (const auto* done = std::get_if<protocol::BuildFinished>(&message)) {
        // The build's log on disk before its end is recorded (a reader of a finished build
        // sees it whole); a failing disk keeps it queued, and the end is recorded anyway.
        if (auto flushed = log_writer->flush(done->build, std::chrono::seconds(10)); !flushed) {
            log::error("build {}: {}", done->build, flushed.error().message);
        }
    }
    std::unique_lock lock(mutex);
    const auto worker = workers.find(worker_name);
    if (worker == workers.end() || worker->second.link.get() != link) {
        return; // a connection the master already gave up on
    }
    worker->second.last_seen = std::chrono::steady_clock::now();
    if (std::holds_alternative<protocol::Drain>(message)) {
        log::info("worker {} is draining: no new builds", worker_name);
        worker->second.draining = true;
        return;
    }
    // Every other message is about one of this worker's builds.
    const auto build_of = [](const auto& m) -> std::int64_t {
        if constexpr (requires { m.build; }) {
            return m.build;
        } else {
            return 0;
        }
    };
    const auto build_id = std::visit(build_of, message);
    const auto found = running.find(build_id);
    if (found == running.end() || found->second.build.worker != worker_name) {
        log::debug(
            "worker {}: a message about build {}, which it is not running", worker_name, build_id);
        return;
    }
    auto& run = found->second;
    const auto time = now();
    if (const auto* checked = std::get_if<protocol::CheckedOut>(&message)) {
        run.build.branch_tip = checked->branch_tip;
        run.build.target_tip = checked->target_tip;
        run.build.merge_commit = checked->merge_commit;
        if (auto status = store->update_build(run.build); !status) {
            log::error("build {}: {}", build_id, status.error().message);
        }
    } else if (const auto* started = std::get_if<protocol::StepStarted>(&message)) {
        (void)store->save_step(
            store::Step{build_id, started->step, started->name, time, std::nullopt, "", {}});
    } else if (auto* chunk = std::get_if<protocol::LogChunk>(&message)) {
        if (auto followers = run.followers.find(chunk->step); followers != run.followers.end()) {
            std::erase_if(followers->second, [&](const Follower& follower) {
                return !follower.stream->write(follower.events ? sse_event("log", chunk->text)
                                                               : chunk->text);
            });
        }
        // Queued under the lock (never waits): a log read under it sees queued(build) exactly.
        log_writer->append(build_id, chunk->step, chunk->sequence, std::move(chunk->text));
    } else if (const auto* finished = std::get_if<protocol::StepFinished>(&message)) {
        auto steps = store->steps(build_id);
        std::string name;
        std::optional<WallTime> step_started;
        if (steps) {
            for (const auto& step : *steps) {
                if (step.number == finished->step) {
                    name = step.name;
                    step_started = step.started;
                }
            }
        }
        (void)store->save_step(store::Step{build_id,
                                           finished->step,
                                           name,
                                           step_started,
                                           time,
                                           finished->result,
                                           finished->exit_code});
        run.finished_steps.insert(finished->step);
        if (auto followers = run.followers.find(finished->step); followers != run.followers.end()) {
            for (auto& follower : followers->second) {
                if (follower.events) {
                    follower.stream->write(sse_event("end", finished->result));
                }
                follower.stream->finish();
            }
            run.followers.erase(followers);
        }
    } else if (const auto* done = std::get_if<protocol::BuildFinished>(&message)) {
        finish_build_locked(build_id, done->result, done->message);
        lock.unlock();
        changed.notify_all();
    }
}

void MasterState::finish_build_locked(std::int64_t build_id,
                                      const std::string& result,
                                      const std::string& message) {
    const auto found = running.find(build_id);
    if (found == running.end()) {
        return;
    }
    auto& run = found->second;
    // A build stopped by request ends "cancelled", whatever the step said.
    const std::string final_result = run.stop_requested && result != "retry" ? "cancelled" : result;
    run.build.finished = now();
    run.build.result = final_result;
    if (auto status = store->update_build(run.build); !status) {
        log::error("build {}: {}", build_id, status.error().message);
    }
    const bool again = final_result == "retry";
    if (auto status =
            store->finish(run.build.request_id,
                          again ? store::RequestState::Pending : store::RequestState::Completed);
        !status) {
        log::error("build {}: {}", build_id, status.error().message);
    }
    for (const auto& lock_name : run.locks) {
        --locks_in_use[lock_name];
    }
    if (auto worker = workers.find(run.build.worker); worker != workers.end()) {
        worker->second.builds.erase(build_id);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run.started).count();
    ++metrics.finished[{run.build.builder, final_result}];
    auto& histogram = metrics.durations[run.build.builder];
    histogram.buckets.resize(std::size(duration_buckets) + 1);
    const auto bucket = static_cast<std::size_t>(
        std::ranges::lower_bound(duration_buckets, seconds) - std::begin(duration_buckets));
    ++histogram.buckets[bucket];
    histogram.sum += seconds;
    ++histogram.count;
    for (auto& [step, followers] : run.followers) {
        for (auto& follower : followers) {
            if (follower.events) {
                follower.stream->write(sse_event("end", final_result));
            }
            follower.stream->finish();
        }
    }
    log::info("build {} ({} on {}) ended: {}{}{}",
              build_id,
              run.build.builder,
              run.build.worker,
              final_result,
              message.empty() ? "" : ": ",
              message);
    running.erase(found);
    dispatch_needed = true;
}

void MasterState::stop_build(std::int64_t build_id, const std::string& who) {
    const std::lock_guard lock(mutex);
    const auto found = running.find(build_id);
    if (found == running.end()) {
        return;
    }
    found->second.stop_requested = true;
    log::info("build {}: stop requested by {}", build_id, who);
    if (auto worker = workers.find(found->second.build.worker); worker != workers.end()) {
        worker->second.link->send(protocol::StopBuild{build_id});
    }
}

Result<WorkerToken> MasterState::issue_worker_token(const std::string& worker_class,
                                                    std::string name_suffix,
                                                    std::chrono::seconds lifetime) {
    const auto found = config.slaves.find(worker_class);
    const auto* ec2 =
        found == config.slaves.end() ? nullptr : std::get_if<config::Ec2Workers>(&found->second);
    if (ec2 == nullptr) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("\"{}\" is not an EC2 worker class of the config (slaves.<class> "
                                "with ami); static workers log in with their passwords",
                                worker_class));
    }
    auto token = crypto::random_token(32);
    if (!token) {
        return fail(token.error());
    }
    if (name_suffix.empty()) {
        auto random = crypto::random_token(4);
        if (!random) {
            return fail(random.error());
        }
        name_suffix = std::move(*random);
    }
    if (name_suffix.find('/') != std::string::npos) {
        return fail(ErrorCode::InvalidArgument, "a worker name suffix has no '/'");
    }
    (void)log::add_secret(*token);
    WorkerToken issued{fmt::format("{}/{}", worker_class, name_suffix), *token, now() + lifetime};
    {
        const std::lock_guard lock(credentials_mutex);
        if (latent_credentials.contains(issued.name) || static_workers.contains(issued.name)) {
            return fail(ErrorCode::Conflict,
                        fmt::format("worker {} already has credentials", issued.name));
        }
        latent_credentials.emplace(
            issued.name,
            LatentCredential{worker_class, ec2->max_builds, *token, {}, issued.expires});
    }
    log::info(
        "one-time token issued for worker {} (valid for {} s)", issued.name, lifetime.count());
    return issued;
}

std::optional<MasterState::LatentLogin> MasterState::latent_login(const std::string& name,
                                                                  const std::string& proof,
                                                                  const std::string& nonce) {
    const std::lock_guard lock(credentials_mutex);
    const auto found = latent_credentials.find(name);
    if (found == latent_credentials.end()) {
        // As much work as a wrong secret: a refusal's timing does not tell which names exist.
        (void)crypto::constant_time_equal(proof, protocol::proof(nonce, nonce));
        return std::nullopt;
    }
    auto& credential = found->second;
    if (credential.expires && *credential.expires < now()) {
        log::warn("worker {}: its one-time token expired unused", name);
        latent_credentials.erase(found);
        return std::nullopt;
    }
    const bool current =
        crypto::constant_time_equal(proof, protocol::proof(credential.secret, nonce));
    const bool previous =
        !credential.previous.empty() &&
        crypto::constant_time_equal(proof, protocol::proof(credential.previous, nonce));
    if (!current && !previous) {
        return std::nullopt;
    }
    // Both sides now derive the next secret from the one just proven (it is never sent). The
    // secret the worker last knew stays valid until the new one is used, in case this welcome
    // is lost; a used one-time token does not.
    const std::string used = current ? credential.secret : credential.previous;
    auto next = protocol::next_secret(used, nonce);
    (void)log::add_secret(next);
    if (current) {
        credential.previous = credential.expires ? std::string() : credential.secret;
    }
    credential.secret = std::move(next);
    credential.expires.reset();
    return LatentLogin{credential.worker_class, credential.max_builds};
}

void MasterState::shutdown() {
    std::call_once(shutdown_once, [this] {
        log::info("shutting down: no new webhooks, workers or builds");
        if (http) {
            http->stop_accepting();
        }
        if (worker_server) {
            worker_server->stop_accepting();
        }
        std::unique_lock lock(mutex);
        accepting_builds = false;
        const auto deadline = std::chrono::steady_clock::now() + options.shutdown_grace;
        if (!running.empty()) {
            log::info("waiting up to {} s for {} running build(s)",
                      options.shutdown_grace.count(),
                      running.size());
        }
        changed.wait_until(lock, deadline, [&] { return running.empty(); });
        if (!running.empty()) {
            log::warn("stopping {} build(s) still running; their requests are queued again",
                      running.size());
            for (auto& [id, run] : running) {
                if (auto worker = workers.find(run.build.worker); worker != workers.end()) {
                    worker->second.link->send(protocol::StopBuild{id});
                }
            }
            // Their steps get their grace to stop; whatever is still running after that is
            // left to the next start (recover_unfinished).
            changed.wait_for(lock, std::chrono::seconds(15), [&] { return running.empty(); });
            std::vector<std::int64_t> left;
            for (const auto& [id, run] : running) {
                left.push_back(id);
            }
            for (const auto id : left) {
                finish_build_locked(id, "retry", "the master shut down");
            }
        }
        stopping = true;
        std::vector<std::shared_ptr<Link>> links;
        for (auto& [name, worker] : workers) {
            links.push_back(worker.link);
            (void)store->save_worker(
                store::WorkerRecord{name, worker.worker_class, "disconnected", now()});
        }
        workers.clear();
        lock.unlock();
        changed.notify_all();
        for (auto& link : links) {
            link->close();
        }
        links.clear();
        if (dispatcher.joinable()) {
            dispatcher.join();
        }
        if (housekeeper.joinable()) {
            housekeeper.join();
        }
        if (poller.joinable()) {
            poller.join();
        }
        http.reset();
        worker_server.reset();
        log_writer.reset(); // writes what is queued
        ingestor.reset();   // writes what is queued
        log::info("master stopped");
    });
}

} // namespace detail

Master::Master(std::unique_ptr<MasterState> state) : state_(std::move(state)) {}

Result<std::unique_ptr<Master>> Master::start(const config::Config& config, MasterOptions options) {
    auto state = std::make_unique<MasterState>();
    state->config = config;
    state->options = std::move(options);
    state->clock = state->options.clock != nullptr ? state->options.clock : &state->system_clock;
    if (auto status = state->start_services(); !status) {
        state->shutdown();
        return fail(status.error());
    }
    return std::unique_ptr<Master>(new Master(std::move(state)));
}

Master::~Master() {
    state_->shutdown();
}

std::uint16_t Master::web_port() const {
    return state_->http->port();
}

std::uint16_t Master::worker_port() const {
    return state_->worker_server->port();
}

void Master::shutdown() {
    state_->shutdown();
}

Result<WorkerToken> Master::issue_worker_token(const std::string& worker_class,
                                               std::string name_suffix,
                                               std::chrono::seconds lifetime) {
    return state_->issue_worker_token(worker_class, std::move(name_suffix), lifetime);
}

} // namespace ci::master
