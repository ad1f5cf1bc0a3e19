#include "master/coordinator.h"

#include <fmt/format.h>

#include <ci/core/log.h>

namespace ci::master {

namespace {

// The build a message is about (0 for messages about no build).
std::int64_t build_of(const protocol::Message& message) {
    return std::visit(
        [](const auto& m) -> std::int64_t {
            if constexpr (requires { m.build; }) {
                return m.build;
            } else {
                return 0;
            }
        },
        message);
}

} // namespace

std::optional<Login>
Coordinator::login(const std::string& name, const std::string& proof, const std::string& nonce) {
    return p_.credentials.login(name, proof, nonce);
}

void Coordinator::save_worker(const std::string& name,
                              const std::string& worker_class,
                              const char* state) {
    p_.writes.post(fmt::format("the state of worker {} ({})", name, state),
                   [record = store::WorkerRecord{name, worker_class, state, p_.clock.now()}](
                       store::Store& store) { return store.save_worker(record); });
}

void Coordinator::connected(const std::string& name,
                            const Login& login,
                            bool local,
                            std::shared_ptr<Link> link) {
    if (refusing_) {
        link->close();
        return;
    }
    auto replaced = p_.workers.add(name, login.worker_class, login.max_builds, local, link);
    save_worker(name, login.worker_class, "idle");
    if (replaced) {
        // The same worker again (it restarted, or its old connection is half-open): the new
        // connection won, and whatever the old one ran is retried.
        log::warn("worker {} connected again; its previous connection is dropped", name);
        for (const auto build : replaced->builds) {
            finish(build, BuildResult::Retry, "its worker connected again");
        }
        if (replaced->link) {
            replaced->link->close();
        }
    }
    p_.wake_dispatcher();
}

void Coordinator::lost(const std::string& name, const Link* link, const std::string& why) {
    auto view = p_.workers.view(name);
    auto builds = p_.workers.remove(name, link);
    if (!builds) {
        return; // an old connection of a worker that connected again
    }
    const bool shut_down = view && view->shutting_down && builds->empty();
    if (!builds->empty()) {
        log::warn("worker {} lost ({}) during {} build(s): they end as retry and their requests "
                  "are queued again",
                  name,
                  why,
                  builds->size());
    } else {
        log::info("worker {} {} ({})", name, shut_down ? "shut down" : "disconnected", why);
    }
    for (const auto build : *builds) {
        finish(build, BuildResult::Retry, fmt::format("worker {} lost: {}", name, why));
    }
    save_worker(name, view ? view->worker_class : std::string(), shut_down ? "shut down" : "lost");
    p_.wake_dispatcher();
}

void Coordinator::message(const std::string& name, const Link* link, protocol::Message message) {
    if (std::holds_alternative<protocol::LogChunk>(message)) {
        // Back-pressure: while the disk is far behind (or fails), this worker's connection waits
        // here rather than the master's memory growing without bound.
        p_.logs.wait_for_room();
    }
    if (!p_.workers.heard(name, link)) {
        return; // a connection the master already gave up on
    }
    if (std::holds_alternative<protocol::Drain>(message)) {
        log::info("worker {} is draining: no new builds", name);
        p_.workers.drain(name);
        return;
    }
    if (const auto* interrupted = std::get_if<protocol::Interrupted>(&message)) {
        interrupt(name, interrupted->reason);
        return;
    }
    const auto id = build_of(message);
    if (!p_.running.runs_on(id, name)) {
        log::debug("worker {}: a message about build {}, which it is not running", name, id);
        return;
    }
    const auto now = p_.clock.now();
    if (auto* checked = std::get_if<protocol::CheckedOut>(&message)) {
        // A start held back for want of a revision is reported with the checkout's write.
        auto start = p_.reports.checked_out(id, checked->branch_tip);
        auto build = p_.running.checked_out(id,
                                            std::move(checked->branch_tip),
                                            std::move(checked->target_tip),
                                            std::move(checked->merge_commit));
        if (build) {
            auto outbox = start ? p_.reports.outbox(*start) : std::vector<store::OutboxMessage>{};
            p_.writes.post(
                fmt::format("the checkout of build {}", id),
                [build = std::move(*build), outbox = std::move(outbox), grid = p_.grid](
                    store::Store& store) {
                    const GridCache::Write write(grid);
                    return store.update_build(build, outbox);
                },
                [&reports = p_.reports, start = std::move(start)] {
                    if (start) {
                        reports.deliver(*start);
                    }
                });
        } else if (start) {
            p_.reports.deliver(*start);
        }
    } else if (auto* started = std::get_if<protocol::StepStarted>(&message)) {
        if (auto step = p_.running.step_started(id, started->step, std::move(started->name), now)) {
            p_.writes.post(
                fmt::format("the start of step {} of build {}", started->step, id),
                [step = std::move(*step)](store::Store& store) { return store.save_step(step); });
        }
    } else if (auto* chunk = std::get_if<protocol::LogChunk>(&message)) {
        // Memory first (followers see it at once), then the log writer's queue; on_written lets
        // RunningBuilds drop it once it is on disk.
        // A remote worker does not know the config's secrets: they are redacted here.
        store_log(id,
                  chunk->step,
                  chunk->sequence,
                  redaction_.feed(id, chunk->step, {}, chunk->sequence, chunk->text));
    } else if (auto* file = std::get_if<protocol::LogFileChunk>(&message)) {
        file->text = redaction_.feed(id, file->step, file->name, file->sequence, file->text);
        store_logfile(std::move(*file));
    } else if (const auto* finished = std::get_if<protocol::StepFinished>(&message)) {
        // What the redactors held back (a possible start of a secret) ends the step's streams.
        store_rests(id, redaction_.finish(id, finished->step));
        step_finished(id, *finished);
    } else if (const auto* done = std::get_if<protocol::BuildFinished>(&message)) {
        finish(id, done->result, done->message);
    } else if (const auto* trigger = std::get_if<protocol::Trigger>(&message)) {
        p_.triggers.ask(name, id, trigger->step);
    } else if (std::holds_alternative<protocol::UploadBegin>(message) ||
               std::holds_alternative<protocol::UploadChunk>(message) ||
               std::holds_alternative<protocol::UploadEnd>(message)) {
        p_.uploads.add(name, std::move(message));
    }
}

void Coordinator::store_rests(std::int64_t id, std::vector<LogRedaction::Rest> rests) {
    for (auto& rest : rests) {
        if (rest.file.empty()) {
            store_log(id, rest.step, rest.sequence, std::move(rest.text));
        } else {
            store_logfile(protocol::LogFileChunk{
                id, rest.step, std::move(rest.file), rest.sequence, std::move(rest.text)});
        }
    }
}

void Coordinator::store_log(std::int64_t id, int step, std::int64_t sequence, std::string text) {
    // Memory first (followers see it at once), then the log writer's queue; on_written lets
    // RunningBuilds drop it once it is on disk.
    p_.running.log(id, step, sequence, text);
    p_.logs.append(id, step, sequence, std::move(text));
}

void Coordinator::store_logfile(protocol::LogFileChunk chunk) {
    auto what = fmt::format("chunk {} of log file {} of step {} of build {}",
                            chunk.sequence,
                            chunk.name,
                            chunk.step,
                            chunk.build);
    const auto id = chunk.build;
    const int step = chunk.step;
    auto file_name = chunk.name;
    p_.writes.post(
        std::move(what),
        [chunk = std::move(chunk)](store::Store& store) {
            return store.append_logfile(
                chunk.build, chunk.step, chunk.name, chunk.sequence, chunk.text);
        },
        // Stored: those following the file read what it gained.
        [&running = p_.running, id, step, file_name = std::move(file_name)] {
            for (const auto& watcher : running.logfile_watchers(id, step, file_name)) {
                watcher->stored();
            }
        });
}

void Coordinator::interrupt(const std::string& name, const std::string& reason) {
    // Its instance goes away in about two minutes: waiting for its builds, or for its
    // heartbeats to stop, would only delay them. They run again elsewhere at once.
    const std::string why =
        fmt::format("worker {} is being interrupted ({})", name, reason.substr(0, 200));
    p_.workers.drain(name);
    const auto view = p_.workers.view(name);
    const auto builds = view ? view->builds : std::vector<std::int64_t>{};
    log::warn("{}: no new builds; {} running build(s) end as retry and their requests are "
              "queued again",
              why,
              builds.size());
    const auto link = p_.workers.link(name);
    for (const auto build : builds) {
        if (link) {
            link->send(protocol::StopBuild{build});
        }
        finish(build, BuildResult::Retry, why);
    }
}

void Coordinator::end_logfile_watchers(std::int64_t id, int step) {
    auto watchers = p_.running.take_logfile_watchers(id, step);
    if (watchers.empty()) {
        return;
    }
    // After the log file chunks queued before (the worker sent them before the step's end).
    p_.writes.post(
        fmt::format("the end of the log files of build {}", id),
        [](store::Store&) -> Status { return {}; },
        [watchers = std::move(watchers)] {
            for (const auto& watcher : watchers) {
                watcher->ended();
            }
        });
}

void Coordinator::step_finished(std::int64_t id, const protocol::StepFinished& finished) {
    auto step = p_.running.step_finished(
        id, finished.step, finished.result, finished.exit_code, p_.clock.now());
    end_logfile_watchers(id, finished.step);
    if (step) {
        step->description = finished.description;
        step->tests = finished.tests;
        if (finished.tests) {
            p_.reports.step_tests(id, *finished.tests);
        }
        step->properties = finished.properties;
        p_.writes.post(
            fmt::format("the end of step {} of build {}", finished.step, id),
            [record = std::move(*step)](store::Store& store) { return store.save_step(record); });
    }
}

void Coordinator::finish(std::int64_t id, BuildResult result, const std::string& message) {
    // A stream whose step sent no end (a worker lost, or one that ends its build without
    // them) keeps nothing back: its last bytes are stored before the build ends.
    store_rests(id, redaction_.finish_build(id));
    auto ended = p_.running.end(id, result, p_.clock.now());
    if (!ended) {
        return;
    }
    const auto& build = ended->build;
    const auto final_result = *build.result;
    const bool again = final_result == BuildResult::Retry;
    auto& running = p_.running;
    // Its reports go in the same transaction as its end (Reporter::outbox), delivered after.
    auto report = p_.reports.finished(id, final_result);
    auto outbox = report ? p_.reports.outbox(*report) : std::vector<store::OutboxMessage>{};
    // The build, its request and its reports in one queued write, once its log is on disk: when
    // the store says the build ended, its log is complete there.
    p_.writes.post(
        fmt::format("the end of build {} ({}) and of its request {}",
                    id,
                    to_string(final_result),
                    build.request_id),
        [build, again, outbox = std::move(outbox), &logs = p_.logs, grid = p_.grid](
            store::Store& store) -> Status {
            // Its log first (the log writer's own queue): a reader of a finished build sees it
            // whole. A disk that fails keeps the chunks queued there; the end waits for them.
            if (auto flushed = logs.flush(build.id, std::chrono::seconds(10)); !flushed) {
                return flushed;
            }
            const GridCache::Write write(grid); // its cell's result
            return store.end_build(build,
                                   again ? store::RequestState::Pending
                                         : store::RequestState::Completed,
                                   outbox);
        },
        [&running,
         &reports = p_.reports,
         &triggers = p_.triggers,
         report = std::move(report),
         build,
         again,
         wake = p_.wake_dispatcher] {
            running.forget(build.id);
            if (report) {
                reports.deliver(*report);
            }
            if (again) {
                wake(); // its request is pending again
            } else {
                // On this thread, after its end is stored: a trigger step waiting for it hears
                // of it once, whether it registered before or after (Triggers).
                triggers.ended({build.request_id, build.builder, build.id, *build.result});
            }
        });
    end_logfile_watchers(id, -1);
    p_.triggers.build_ended(id);
    p_.uploads.ended(id);
    p_.locks.release(ended->locks, build.worker);
    p_.workers.release(build.worker, id);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - ended->started).count();
    p_.metrics.build_finished(ended->labels, final_result, seconds);
    log::info("build {} ({} on {}) ended: {}{}{}{}",
              id,
              build.builder,
              build.worker,
              to_string(final_result),
              message.empty() ? "" : ": ",
              message,
              ended->retries_spent ? " (its request was retried as often as "
                                     "buildmaster.max_retries allows: it is not queued again)"
                                   : "");
    p_.wake_dispatcher();
}

void Coordinator::starting(const build::BuildSpec& spec) {
    p_.uploads.started(spec.build_id, spec.builder, spec.branch);
}

void Coordinator::request_cancelled(std::int64_t request, const std::string& builder) {
    p_.triggers.ended({request, builder, 0, BuildResult::Cancelled});
}

bool Coordinator::pause_worker(const std::string& name, bool paused, const std::string& who) {
    if (!p_.workers.set_paused(name, paused)) {
        return false;
    }
    log::info("worker {} {} by {}: {}",
              name,
              paused ? "paused" : "resumed",
              log::field(who, 64),
              paused ? "no new builds; its running builds go on" : "it takes builds again");
    if (!paused) {
        p_.wake_dispatcher();
    }
    return true;
}

WorkerRegistry::ShutDown Coordinator::shut_down_worker(const std::string& name,
                                                       const std::string& who) {
    std::shared_ptr<Link> link;
    const auto outcome = p_.workers.shut_down(name, link);
    if (outcome != WorkerRegistry::ShutDown::Started) {
        return outcome;
    }
    const auto view = p_.workers.view(name);
    const bool local = view && view->local;
    log::info("worker {} shut down by {}: no new builds; {} once its {} running build(s) end",
              name,
              log::field(who, 64),
              local ? "it stays idle (a local worker) until the master restarts"
                    : "it is told to exit",
              view ? view->builds.size() : 0);
    // A remote worker finishes its builds and exits by itself (protocol::Shutdown); a
    // local one ignores the message.
    if (link) {
        link->send(protocol::Shutdown{});
    }
    return outcome;
}

bool Coordinator::stop(std::int64_t id, const std::string& who) {
    const auto worker = p_.running.request_stop(id);
    if (!worker) {
        return false;
    }
    log::info("build {}: stop requested by {}", id, who);
    if (auto link = p_.workers.link(*worker)) {
        link->send(protocol::StopBuild{id});
    }
    return true;
}

void Coordinator::disconnect_all() {
    refusing_ = true;
    for (auto& removed : p_.workers.remove_all()) {
        save_worker(removed.name, removed.worker_class, "disconnected");
        removed.link->close();
    }
}

} // namespace ci::master
