#include "ci/master/master.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/build/runner.h>
#include <ci/config/worker_files.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/http/client.h>
#include <ci/report/github.h>
#include <ci/report/zulip.h>

#include "core/ip_network.h"
#include "master/guards.h"
#include "master/impl.h"
#include "master/json.h"
#include "master/local_worker.h"
#include "master/protocol.h"
#include "master/results_retention.h"
#include "master/worker_certificate.h"
#include "web/page.h"

namespace ci::master {

namespace detail {

namespace {

// How far back a webhook delivery is recognised as sent again (GitHub's redeliveries).
constexpr auto delivery_window = std::chrono::hours(24 * 7);
// What the store keeps of history it no longer needs (delivery ids, sent reports): a day more.
constexpr auto history_kept = delivery_window + std::chrono::hours(24);
constexpr auto prune_interval = std::chrono::hours(1);
constexpr auto results_sweep_interval = std::chrono::hours(1);

// Each class's worker_files read from the master's disk and encoded as the WorkerFile messages
// its workers get after login; their contents become secrets of the log (never shown). Fails
// with the first file that cannot be read or is over a cap, naming it (not its content).
Result<std::map<std::string, ClassFiles>> worker_files(const config::Config& config) {
    std::map<std::string, ClassFiles> out;
    for (const auto& [name, worker_class] : config.slaves) {
        const auto& files = config::worker_files_of(worker_class);
        if (files.empty()) {
            continue;
        }
        auto read = config::read_worker_files(name, files);
        if (!read) {
            return fail(read.error());
        }
        std::string messages;
        for (auto& file : *read) {
            for (const auto& secret : config::worker_file_secrets(file.content)) {
                (void)log::add_secret(secret);
            }
            messages +=
                protocol::encode(protocol::WorkerFile{file.destination, std::move(file.content)});
        }
        out[name] =
            ClassFiles{std::make_shared<const std::string>(std::move(messages)), read->size()};
    }
    return out;
}

} // namespace

MasterState::MasterState(config::Config c, MasterOptions o)
    : config(std::move(c)), options(std::move(o)),
      clock(options.clock != nullptr ? *options.clock : system_clock), credentials(config, clock),
      locks(config), sessions(config, clock) {}

MasterState::~MasterState() {
    shutdown();
}

Status MasterState::open_store() {
    auto opened = store::open_sqlite(config.buildmaster.state);
    if (!opened) {
        return fail(opened.error());
    }
    store = std::move(*opened);
    const auto recovered = store->recover_unfinished(clock.now());
    if (!recovered) {
        return fail(recovered.error());
    }
    if (*recovered > 0) {
        log::warn("{} build(s) left unfinished by the previous master end as retry; their "
                  "requests are queued again",
                  *recovered);
    }
    auto seen = store->deliveries_since(clock.now() - delivery_window);
    if (!seen) {
        return fail(seen.error());
    }
    deliveries.load(*seen);
    reads = std::make_unique<ReadPool>(config.buildmaster.state, 2);
    writes = std::make_unique<StoreWrites>(*store, metrics);
    // Build logs: their own connection and thread, group commits at synchronous=NORMAL.
    store::LogWriterOptions log_options;
    log_options.on_failure = [this](const Error& error) { writes->note_other_write(fail(error)); };
    log_options.on_recovered = [this] { writes->note_other_write({}); };
    log_options.on_written = [this](std::int64_t build, int step, std::int64_t sequence) {
        running.logged(build, step, sequence);
    };
    auto log_writer = store::LogWriter::open(config.buildmaster.state, log_options);
    if (!log_writer) {
        return fail(log_writer.error());
    }
    logs = std::move(*log_writer);
    return {};
}

Status MasterState::start() {
    // Before anything runs: a step_user that cannot be used is a start error naming its key.
    auto step_users = local_step_users(config);
    if (!step_users) {
        return fail(step_users.error());
    }
    if (auto status = open_store(); !status) {
        return status;
    }
    if (auto status = start_reporters(); !status) {
        return status;
    }
    triggers = std::make_unique<Triggers>(Triggers::Parts{
        config, clock, *writes, workers, running, *reports, [this] { dispatcher->wake(); }});
    uploads = std::make_unique<Uploads>(
        config,
        Uploads::Options{.root = options.data_dir / "results",
                         .max_per_build = config.buildmaster.max_upload_size,
                         .metrics = &metrics},
        [this](const std::string& worker, const protocol::Message& message) {
            if (auto link = workers.link(worker)) {
                link->send(message);
            }
        });
    coordinator = std::make_unique<Coordinator>(Coordinator::Parts{clock,
                                                                   credentials,
                                                                   workers,
                                                                   running,
                                                                   locks,
                                                                   metrics,
                                                                   *writes,
                                                                   *logs,
                                                                   *reports,
                                                                   *triggers,
                                                                   *uploads,
                                                                   [this] { dispatcher->wake(); },
                                                                   config::secrets(config),
                                                                   &grid_cache});
    dispatcher = std::make_unique<Dispatcher>(
        Dispatcher::Parts{config,
                          clock,
                          *store,
                          workers,
                          running,
                          locks,
                          *coordinator,
                          metrics,
                          *reports,
                          options.dispatcher_name,
                          [this] { return web_url(config, http ? http->port() : 0); },
                          &grid_cache});
    store::IngestOptions ingest_options;
    ingest_options.on_requests = [this](const std::vector<store::BuildRequest>& requests) {
        reports->requested(requests);
        dispatcher->wake();
        if (ec2) {
            ec2->wake();
        }
    };
    ingest_options.reports = [this](const store::BuildRequest& request) {
        return reports->request_outbox(request);
    };
    ingest_options.on_commit = [this](const Status& status) { writes->note_other_write(status); };
    auto ingest = store::Ingestor::start(config, *store, clock, ingest_options);
    if (!ingest) {
        return fail(ingest.error());
    }
    ingestor = std::move(*ingest);
    if (auto status = start_ec2_pool(); !status) {
        return status;
    }
    if (auto status = start_servers(); !status) {
        return status;
    }
    // Local workers last: they may start building at once.
    start_local_workers(*step_users);
    dispatcher->start();
    if (ec2) {
        ec2->start();
    }
    housekeeper = std::thread([this] { run_housekeeper(); });
    poller = std::make_unique<Poller>(
        config, *store, *ingestor, clock, GitCredentials{options.git_token, options.ssh_key});
    poller->on_store_write([this](const Status& status) { writes->note_other_write(status); });
    poller->start();
    return {};
}

// The pool of EC2 latent workers, when some class has `ami`.
Status MasterState::start_ec2_pool() {
    const bool any = std::ranges::any_of(config.slaves, [](const auto& entry) {
        return std::holds_alternative<config::Ec2Workers>(entry.second);
    });
    if (!any) {
        return {};
    }
    auto pool = Ec2Pool::create(Ec2Pool::Parts{config,
                                               clock,
                                               credentials,
                                               workers,
                                               *reports,
                                               config.buildmaster.state,
                                               ec2_user_data(),
                                               options.ec2_reconcile,
                                               {},
                                               options.ec2_timeout});
    if (!pool) {
        return fail(pool.error());
    }
    ec2 = std::move(*pool);
    return {};
}

// The pool's user data: options.ec2_user_data with the bound worker port and its certificate's
// fingerprint (both known once start_servers ran, before the pool's thread starts).
UserDataRenderer MasterState::ec2_user_data() {
    if (!options.ec2_user_data) {
        return {};
    }
    return [this](const std::string& worker_class,
                  const std::string& worker,
                  const std::string& token) -> Result<std::string> {
        return options.ec2_user_data(
            Ec2Launch{worker_class,
                      worker,
                      token,
                      worker_server ? worker_server->port() : std::uint16_t{0},
                      worker_fingerprint});
    };
}

// The reporters an embedding program gave, GitHub's when github.report_status is true and
// Zulip's when the config has a zulip section.
Status MasterState::start_reporters() {
    auto list = options.reporters;
    http::ClientOptions client_options;
    client_options.timeout = std::chrono::seconds(30);
    client_options.retry.max_attempts = 1; // the reporters retry, honouring Retry-After
    // A reporter that gives up tells every reporter (Zulip's ops_stream), once they exist.
    const report::OpsHook ops = [this](const report::OpsEvent& event) {
        if (auto* target = ops_reports.load()) {
            target->operational(event);
        }
    };
    // Each with its outbox on a store connection of its own: GitHub's and Zulip's
    // start_reporter take the same arguments, but for their settings.
    const auto add = [&](auto start_reporter, auto settings) -> Status {
        auto outbox = store::open_sqlite(config.buildmaster.state);
        if (!outbox) {
            return fail(outbox.error());
        }
        auto reporter = start_reporter(
            std::move(settings), std::move(*outbox), http::make_client(client_options), clock, ops);
        if (!reporter) {
            return fail(reporter.error());
        }
        list.push_back(std::move(*reporter));
        return {};
    };
    if (config.github.report_status) {
        if (auto added = add(report::github::start_reporter, report::github::settings_from(config));
            !added) {
            return added;
        }
        log::info("github: reporting commit statuses to {}", config.github.api_url);
    }
    if (config.zulip) {
        if (auto added = add(report::zulip::start_reporter, report::zulip::settings_from(config));
            !added) {
            return added;
        }
        log::info("zulip: reporting to {} (stream {})", config.zulip->site, config.zulip->stream);
    }
    reports = std::make_unique<Reports>(config, clock, std::move(list), web_url(config));
    ops_reports = reports.get();
    // A store that becomes degraded is told to the operators at once (Zulip's ops_stream).
    writes->on_degraded([this](const std::string& error) {
        if (auto* target = ops_reports.load()) {
            target->operational(
                report::OpsEvent{report::OpsEvent::Kind::StoreDegraded,
                                 "store",
                                 "the master's writes to its store fail: " + error});
        }
    });
    return {};
}

Status MasterState::start_servers() {
    services = std::make_unique<Services>(Services{config,
                                                   clock,
                                                   *reads,
                                                   *ingestor,
                                                   deliveries,
                                                   credentials,
                                                   workers,
                                                   running,
                                                   metrics,
                                                   *writes,
                                                   *coordinator,
                                                   *reports,
                                                   *dispatcher,
                                                   accepting,
                                                   ec2.get(),
                                                   sessions,
                                                   options.data_dir / "results",
                                                   grid_cache});
    router = std::make_unique<Router>(
        api_check(config, sessions), view_check(config, sessions), form_check(config, sessions));
    add_login_routes(*router, *services);
    add_webhook_routes(*router, *services);
    add_builder_routes(*router, *services);
    add_change_routes(*router, *services);
    add_request_routes(*router, *services);
    add_build_routes(*router, *services);
    add_worker_routes(*router, *services);
    add_health_routes(*router, *services);
    add_master_routes(*router, *services);
    add_ui_routes(*router, *services);
    add_build_page_routes(*router, *services);
    add_results_routes(*router, options.data_dir / "results");
    router->on_page_not_found(
        [&s = *services](const http::ServerRequest& request, std::string_view message) {
            return form_error(page_frame(s, request, "Not found"), 404, message);
        });
    router->check_hosts(served_host_names(
        config.buildmaster.host, config.buildmaster.url, config.buildmaster.web_hosts));

    auto tls = worker_port_tls(config, options.data_dir);
    if (!tls) {
        return fail(tls.error());
    }
    auto files = worker_files(config);
    if (!files) {
        return fail(files.error());
    }
    worker_fingerprint = tls->fingerprint;
    const auto& limits = config.buildmaster.limits;
    auto workers_server = WorkerServer::start(
        *coordinator,
        options.listen_address,
        config.buildmaster.worker_port,
        options.heartbeat,
        *tls,
        WorkerPortLimits{static_cast<std::size_t>(limits.worker_connections),
                         static_cast<std::size_t>(limits.worker_connections_per_address),
                         limits.hello_timeout},
        std::move(*files));
    if (!workers_server) {
        return fail(workers_server.error());
    }
    worker_server = std::move(*workers_server);

    http::ServerOptions http_options;
    http_options.address = options.listen_address;
    http_options.port = config.buildmaster.web_port;
    http_options.threads = std::max(1U, options.http_threads);
    http_options.max_body = webhook_max_body;
    http_options.max_header = static_cast<std::size_t>(limits.http_header_bytes);
    http_options.max_body_memory = static_cast<std::size_t>(limits.body_memory_bytes);
    http_options.max_connections = static_cast<std::size_t>(limits.http_connections);
    http_options.max_connections_per_address =
        static_cast<std::size_t>(limits.http_connections_per_address);
    http_options.idle_timeout = limits.idle_timeout;
    http_options.header_timeout = limits.header_timeout;
    http_options.request_timeout = limits.request_timeout;
    http_options.default_headers = web::default_security_headers();
    std::vector<IpNetwork> proxies;
    for (const auto& proxy : config.buildmaster.trusted_proxies) {
        if (auto network = parse_ip_network(proxy)) {
            proxies.push_back(*network); // check-config refused the others
        }
    }
    if (!proxies.empty()) {
        http_options.client_address = [proxies =
                                           std::move(proxies)](const std::string& peer,
                                                               const http::ServerRequest& request) {
            std::string forwarded;
            for (const auto& [name, value] : request.headers) {
                if (name == "x-forwarded-for") {
                    forwarded += (forwarded.empty() ? "" : ",") + value;
                }
            }
            return client_address(peer, forwarded, proxies);
        };
    }
    http_options.check_header = [this](const http::ServerRequest& request, std::size_t& max_body) {
        return router->check_header(request, max_body);
    };
    auto server =
        http::Server::start(http_options, [this](http::ServerRequest& request, http::Reply reply) {
            router->handle(request, std::move(reply));
        });
    if (!server) {
        return fail(server.error());
    }
    http = std::move(*server);
    return {};
}

void MasterState::start_local_workers(const std::map<std::string, RunAs>& step_users) {
    for (const auto& [class_name, worker_class] : config.slaves) {
        const auto* local = std::get_if<config::LocalWorkers>(&worker_class);
        if (local == nullptr) {
            continue;
        }
        for (int i = 0; i < local->count; ++i) {
            const auto name = fmt::format("{}/{}", class_name, i);
            build::RunnerOptions runner;
            runner.work_root = options.data_dir / "work" / fmt::format("{}-{}", class_name, i);
            runner.slots = std::make_shared<build::WorkSlots>(runner.work_root);
            runner.cache_dir = options.data_dir / "cache";
            runner.git_token = options.git_token;
            runner.ssh_key = options.ssh_key;
            runner.cgroups = options.step_cgroups;
            if (const auto user = step_users.find(class_name); user != step_users.end()) {
                runner.step_user = user->second;
            }
            // A local step could find the config's secrets (a master's memory is its own);
            // none of them reaches a log.
            runner.log_secrets = config::secrets(config);
            coordinator->connected(name,
                                   Login{class_name, local->max_builds, false},
                                   true,
                                   std::make_shared<LocalWorker>(*coordinator, name, runner));
        }
    }
}

// Writes the workers' state now and then (last seen), for the API after a restart.
void MasterState::run_housekeeper() {
    std::unique_lock lock(quiet_mutex);
    auto next_prune = clock.now();
    // Results past their retention (unless it is `never`) and partial files of uploads never
    // resumed: swept at once, then hourly, and what is left measured (ci_results_bytes). The
    // sweep walks the disk without the lock: shutdown need not wait for it.
    auto next_sweep = clock.now();
    const auto sweep = [&] {
        if (const auto now = clock.now(); now >= next_sweep) {
            next_sweep = now + results_sweep_interval;
            lock.unlock();
            const auto retention = config.buildmaster.results_retention;
            (void)uploads->sweep_partials(
                now,
                retention.count() > 0 ? std::min<std::chrono::seconds>(retention, partial_max_age)
                                      : partial_max_age);
            metrics.results_bytes =
                sweep_results(options.data_dir / "results", now, retention).kept_bytes;
            lock.lock();
        }
    };
    sweep();
    while (!quiet.wait_for(lock, std::chrono::seconds(30), [&] { return stopping; })) {
        sweep();
        if (const auto now = clock.now(); now >= next_prune) {
            next_prune = now + prune_interval;
            writes->post("the pruning of old webhook deliveries and sent reports",
                         [before = now - history_kept](store::Store& s) -> Status {
                             auto removed = s.prune(before);
                             if (!removed) {
                                 return fail(removed.error());
                             }
                             if (*removed > 0) {
                                 log::info("pruned {} rows of history (webhook deliveries, sent "
                                           "reports) older than 8 days",
                                           *removed);
                             }
                             return {};
                         });
        }
        // Wrong passwords and signatures held back from the last line: logged now, not only
        // with the next failure.
        if (router) {
            (void)router->auth_failures().flush();
            (void)router->signature_failures().flush();
        }
        for (const auto& worker : workers.views()) {
            writes->post(fmt::format("the state of worker {}", worker.name),
                         [record =
                              store::WorkerRecord{
                                  worker.name, worker.worker_class, worker.state(), clock.now()}](
                             store::Store& s) { return s.save_worker(record); });
        }
    }
}

void MasterState::wait_for_builds(std::chrono::steady_clock::time_point deadline) {
    while (running.size() > 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

// Asks every running build to stop, gives their steps their grace, and ends what is left as
// retry (queued again for the next start).
void MasterState::stop_builds() {
    const auto left = running.builds();
    log::warn("stopping {} build(s) still running; their requests are queued again", left.size());
    for (const auto& build : left) {
        if (auto link = workers.link(build.worker)) {
            link->send(protocol::StopBuild{build.id});
        }
    }
    wait_for_builds(std::chrono::steady_clock::now() + std::chrono::seconds(15));
    for (const auto& build : running.builds()) {
        coordinator->finish(build.id, BuildResult::Retry, "the master shut down");
    }
}

void MasterState::shutdown() {
    std::call_once(shutdown_once, [this] {
        const bool started = http && worker_server;
        if (started) {
            log::info("shutting down: no new webhooks, workers or builds");
        }
        accepting = false;
        if (http) {
            http->stop_accepting();
        }
        if (worker_server) {
            worker_server->stop_accepting();
        }
        if (dispatcher) {
            dispatcher->stop();
        }
        if (ec2) {
            ec2->hold_launches();
        }
        if (poller) {
            poller->stop(); // no new changes either
        }
        if (coordinator) {
            if (running.size() > 0) {
                log::info("waiting up to {} s for {} running build(s)",
                          options.shutdown_grace.count(),
                          running.size());
            }
            wait_for_builds(std::chrono::steady_clock::now() + options.shutdown_grace);
            if (running.size() > 0) {
                stop_builds();
            }
        }
        {
            const std::lock_guard lock(quiet_mutex);
            stopping = true;
        }
        quiet.notify_all();
        if (housekeeper.joinable()) {
            housekeeper.join();
        }
        if (ec2) {
            ec2->stop(); // its instances end with this run (their workers cannot log in again)
        }
        if (coordinator) {
            coordinator->disconnect_all();
        }
        http.reset();
        worker_server.reset();
        ingestor.reset(); // writes what is queued
        // The master's writes before the log writer stops: a build's end flushes its log first.
        // Then no write of theirs runs any more, while the log writer, stopping, may still
        // report to them (note_other_write).
        if (writes) {
            for (const auto& lost :
                 writes->drain(std::chrono::steady_clock::now() + std::chrono::seconds(10))) {
                log::error("store: not written before the master stopped: {}", lost);
            }
            writes->stop();
        }
        // After the last event (builds stopped, requests, ends and their reports written, and
        // delivered by the writes' callbacks): the reporters stop; what they have not sent
        // stays in the outbox for the next start.
        if (reports) {
            ops_reports = nullptr;
            reports->stop();
        }
        logs.reset(); // writes what is queued (retrying a few seconds if it fails)
        reads.reset();
        if (started) {
            log::info("master stopped");
        }
    });
}

} // namespace detail

Master::Master(std::unique_ptr<detail::MasterState> state) : state_(std::move(state)) {}

Result<std::unique_ptr<Master>> Master::start(const config::Config& config, MasterOptions options) {
    auto state = std::make_unique<detail::MasterState>(config, std::move(options));
    if (auto status = state->start(); !status) {
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
    return state_->credentials.issue_token(worker_class, std::move(name_suffix), lifetime);
}

} // namespace ci::master
