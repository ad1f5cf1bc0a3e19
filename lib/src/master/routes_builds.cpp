// /api/v1/builds: builds (newest first), one build with its steps, stopping one, and a step's
// log: whole, followed live (chunked text that curl shows as it comes), or as Server-Sent
// Events; a step's log files, whole or followed. Logs of running builds come from memory
// (RunningBuilds), the rest (and log files) from the store.

#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "master/build_links.h"
#include "master/forms.h"
#include "master/json.h"
#include "master/log_output.h"
#include "master/services.h"

namespace ci::master {

namespace {

std::string_view result_text(const std::optional<BuildResult>& result, bool finished) {
    if (!finished) {
        return "running";
    }
    return result ? to_string(*result) : "unknown";
}

void write_tests(Json& json, const build::TestResults& tests) {
    json.key("tests")
        .begin()
        .field("passed", tests.passed)
        .field("failed", tests.failed)
        .field("skipped", tests.skipped)
        .field("errors", tests.errors)
        .strings("failed_tests", tests.failed_tests)
        .end();
}

// What a build led to (build_links.h): "triggered" (always, with a link to each build) and,
// when its uploads stored anything, "results" and "artifacts".
void write_links(Json& json, const BuildLinks& links) {
    json.begin_array("triggered");
    for (const auto& triggered : links.triggered) {
        json.begin()
            .field("request", triggered.request)
            .field("step", triggered.step)
            .field("builder", triggered.builder)
            .field("state", triggered.state);
        if (triggered.build != 0) {
            json.field("build", triggered.build)
                .field("result", triggered.result)
                .field("url", fmt::format("/builds/{}", triggered.build))
                .field("api", fmt::format("/api/v1/builds/{}", triggered.build));
        }
        json.end();
    }
    json.end_array();
    if (!links.results_url.empty()) {
        json.field("results", links.results_url).begin_array("artifacts");
        for (const auto& artifact : links.artifacts) {
            json.begin()
                .field("name", artifact.name)
                .field("directory", artifact.directory)
                .field("url", artifact.url)
                .end();
        }
        json.end_array();
        if (links.more_artifacts) {
            json.field("more_artifacts", true);
        }
    }
}

void write_build(Json& json,
                 const store::Build& build,
                 const store::BuildRequest* request,
                 const std::vector<store::Step>* steps,
                 const std::map<int, std::vector<std::string>>& logfiles = {},
                 const BuildLinks* led_to = nullptr) {
    json.begin()
        .field("id", build.id)
        .field("request", build.request_id)
        .field("builder", build.builder);
    if (request != nullptr) {
        json.field("repository", request->request.repository)
            .field("branch", request->request.branch)
            .field("reason", request->request.reason);
    }
    json.field("worker", build.worker)
        .time("started", build.started)
        .time("finished", build.finished)
        .field("result", result_text(build.result, build.finished.has_value()))
        .field("branch_tip", build.branch_tip)
        .field("target_tip", build.target_tip)
        .field("merge_commit", build.merge_commit);
    if (steps != nullptr) {
        const auto [properties, tests] = build_totals(request, *steps);
        json.strings("properties", properties);
        if (tests) {
            write_tests(json, *tests);
            json.field("summary", "tests: " + tests->summary());
        }
        json.begin_array("steps");
        for (const auto& step : *steps) {
            json.begin()
                .field("number", step.number)
                .field("name", step.name)
                .time("started", step.started)
                .time("finished", step.finished)
                .field("result", result_text(step.result, step.finished.has_value()));
            if (step.exit_code) {
                json.field("exit_code", *step.exit_code);
            }
            if (!step.description.empty()) {
                json.field("description", step.description);
            }
            if (step.tests) {
                write_tests(json, *step.tests);
            }
            if (!step.properties.empty()) {
                json.strings("properties", step.properties);
            }
            if (const auto files = logfiles.find(step.number); files != logfiles.end()) {
                std::map<std::string, std::string> links;
                for (const auto& name : files->second) {
                    links[name] = fmt::format(
                        "/api/v1/builds/{}/steps/{}/logs/{}", build.id, step.number, name);
                }
                json.strings("logfiles", links);
            }
            json.field("log", fmt::format("/api/v1/builds/{}/steps/{}/log", build.id, step.number))
                .end();
        }
        json.end_array();
    }
    if (led_to != nullptr) {
        write_links(json, *led_to);
    }
    json.end();
}

void list(Services& s, const http::ServerRequest& request, http::Reply reply) {
    store::BuildQuery query;
    if (const auto found = request.query.find("builder"); found != request.query.end()) {
        query.builder = found->second;
    }
    query.unfinished_only = request.query.contains("running");
    constexpr auto any_id = std::numeric_limits<std::int64_t>::max();
    const auto request_id = query_number(request, "request", 0, 1, any_id);
    const auto before = query_number(request, "before", 0, 0, any_id);
    const auto limit = query_number(request, "limit", 50, 1, 1000);
    for (const auto* checked : {&request_id, &before, &limit}) {
        if (!*checked) {
            reply.send(error_response(400, checked->error().message));
            return;
        }
    }
    if (request.query.contains("request")) {
        query.request = *request_id;
    }
    query.before_id = *before;
    query.limit = static_cast<int>(*limit);
    s.reads.post([reply, query](store::Store& store) mutable {
        auto builds = store.builds(query);
        if (!builds) {
            reply.send(error_response(500, builds.error().message));
            return;
        }
        Json json;
        json.begin().begin_array("builds");
        std::map<std::int64_t, std::optional<store::BuildRequest>> requests;
        for (const auto& build : *builds) {
            auto [found, fresh] = requests.try_emplace(build.request_id);
            if (fresh) {
                if (auto read = store.request(build.request_id); read && *read) {
                    found->second = std::move(*read);
                }
            }
            write_build(json, build, found->second ? &*found->second : nullptr, nullptr);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
    });
}

void one(Services& s, std::int64_t id, http::Reply reply) {
    s.reads.post([&s, reply, id](store::Store& store) mutable {
        auto build = store.build(id);
        if (!build) {
            reply.send(error_response(500, build.error().message));
            return;
        }
        if (!*build) {
            reply.send(error_response(404, fmt::format("no build {}", id)));
            return;
        }
        auto steps = store.steps(id);
        if (!steps) {
            reply.send(error_response(500, steps.error().message));
            return;
        }
        auto request = store.request((*build)->request_id);
        const store::BuildRequest* found = request && *request ? &**request : nullptr;
        auto logfiles = store.logfile_names(id);
        if (!logfiles) {
            reply.send(error_response(500, logfiles.error().message));
            return;
        }
        auto links = build_links(store, s.config, s.results_dir, **build, found);
        if (!links) {
            reply.send(error_response(500, links.error().message));
            return;
        }
        Json json;
        write_build(json, **build, found, &*steps, *logfiles, &*links);
        reply.send(json_response(200, json.text()));
    });
}

// The core of a stop (the JSON API's and the web UI's): `done` gets 202 when the build is
// being stopped (by `who`), 404 when there is no such build, 409 when it has finished.
void stop_build(Services& s,
                std::int64_t id,
                const std::string& who,
                std::function<void(int status, const std::string& error)> done) {
    if (s.coordinator.stop(id, who)) {
        done(202, {});
        return;
    }
    s.reads.post([done = std::move(done), id](store::Store& store) {
        auto build = store.build(id);
        if (!build) {
            done(500, build.error().message);
        } else if (!*build) {
            done(404, fmt::format("no build {}", id));
        } else {
            done(409, fmt::format("build {} has finished", id));
        }
    });
}

void stop(Services& s, const http::ServerRequest& request, std::int64_t id, http::Reply reply) {
    stop_build(
        s, id, api_user(s, request), [reply, id](int status, const std::string& error) mutable {
            if (!error.empty()) {
                reply.send(error_response(status, error));
                return;
            }
            Json json;
            json.begin().field("stopping", id).end();
            reply.send(json_response(202, json.text()));
        });
}

// POST /builds/{id}/stop: the build page's stop form; 303 back to the page.
void stop_form(Services& s,
               const http::ServerRequest& request,
               std::int64_t id,
               http::Reply reply) {
    with_form(s, request, reply, {}, [&](const Form&, const Viewer& viewer) {
        stop_build(
            s,
            id,
            viewer.user,
            [reply,
             back = came_from(request, fmt::format("/builds/{}", id)),
             frame = page_frame(s, request, "Stop")](int status, const std::string& error) mutable {
                reply.send(error.empty() ? see_other(back) : form_error(frame, status, error));
            });
    });
}

// How a log is asked for.
struct LogQuery {
    std::int64_t build = 0;
    int step = 0;
    LogFormat format = LogFormat::Text;
    bool follow = false; // stay open while the step runs
    LogCursor from;      // where the client is (Last-Event-ID, or ?from=)
};

// Sends a step's log from the store a page at a time, each page read on the read pool once
// the client has taken most of the one before, then `tail` (what memory holds of a running
// build), then calls `done` (which ends the output, or primes a follower). What it buys: a
// reader of a 40 MB log costs the master a page or two of memory, not the log.
class LogSender : public std::enable_shared_from_this<LogSender> {
public:
    LogSender(ReadPool& reads,
              const LogQuery& q,
              std::shared_ptr<LogOutput> output,
              std::int64_t to,
              LogSnapshot tail,
              std::function<void()> done)
        : reads_(reads), q_(q), output_(std::move(output)), to_(to), next_(q.from.sequence),
          tail_(std::move(tail)), done_(std::move(done)) {}

    // Sends on this thread, which must be one of the read pool's (it holds `store`).
    void send(store::Store& store) {
        while (!output_->closed()) {
            if (next_ < to_) {
                auto page = store.log_page(q_.build, q_.step, next_, to_, page_bytes);
                if (!page) {
                    output_->note(fmt::format("the rest of the log could not be read: {}",
                                              page.error().message));
                    break;
                }
                const auto first = next_;
                next_ = page->more ? page->next : to_;
                if (!output_->write(first, page->next, page->text)) {
                    return;
                }
                if (output_->stream().when_drained(page_bytes, [self = shared_from_this()] {
                        self->reads_.post([self](store::Store& next) { self->send(next); });
                    })) {
                    return; // resumed once the client has taken what is queued
                }
                continue;
            }
            if (!tail_.memory.empty() &&
                !output_->write(tail_.memory_first, tail_.next, tail_.memory)) {
                return;
            }
            break;
        }
        done_();
    }

private:
    static constexpr std::size_t page_bytes = std::size_t{256} * 1024;

    ReadPool& reads_;
    LogQuery q_;
    std::shared_ptr<LogOutput> output_;
    std::int64_t to_;
    std::int64_t next_;
    LogSnapshot tail_;
    std::function<void()> done_;
};

std::shared_ptr<LogOutput> log_output(const LogQuery& q, http::Reply& reply) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (q.format != LogFormat::Text || q.follow) {
        headers.emplace_back("Cache-Control", "no-cache");
    }
    return std::make_shared<LogOutput>(
        reply.stream(200, LogOutput::content_type(q.format), std::move(headers)), q.format, q.from);
}

// Sends the log of `q` up to chunk `to` (not included), then `tail`, through `output`; then
// `done`.
void send_log(ReadPool& reads,
              store::Store& store,
              const LogQuery& q,
              std::shared_ptr<LogOutput> output,
              std::int64_t to,
              LogSnapshot tail,
              std::function<void()> done) {
    std::make_shared<LogSender>(reads, q, std::move(output), to, std::move(tail), std::move(done))
        ->send(store);
}

// A log the store holds whole (the build is not in memory).
void stored_log(Services& s, const LogQuery& q, http::Reply reply) {
    s.reads.post([reply, q, &reads = s.reads](store::Store& store) mutable {
        auto build = store.build(q.build);
        if (!build) {
            reply.send(error_response(500, build.error().message));
            return;
        }
        if (!*build) {
            reply.send(error_response(404, fmt::format("no build {}", q.build)));
            return;
        }
        auto steps = store.steps(q.build);
        if (!steps) {
            reply.send(error_response(500, steps.error().message));
            return;
        }
        std::string result;
        bool found = false;
        for (const auto& step : *steps) {
            found = found || step.number == q.step;
            if (step.number == q.step && step.result) {
                result = to_string(*step.result);
            }
        }
        if (!found) {
            reply.send(
                error_response(404, fmt::format("build {} has no step {}", q.build, q.step)));
            return;
        }
        if (result.empty() && (*build)->result) {
            result = to_string(*(*build)->result);
        }
        auto output = log_output(q, reply);
        send_log(reads,
                 store,
                 q,
                 output,
                 std::numeric_limits<std::int64_t>::max(),
                 {},
                 [output, result] { output->end(result); });
    });
}

// Whether build `id`, while it is in memory, can have step `step`: 0 (the checkout) up to its
// builder's steps. A follower of any other number would wait for a step that never starts.
bool may_have_step(Services& s, std::int64_t id, int step) {
    const auto builder = s.running.builder(id);
    if (!builder) {
        return true; // in the store: its steps are there to check
    }
    const auto found = s.config.builders.find(*builder);
    return found != s.config.builders.end() && step >= 0 &&
           static_cast<std::size_t>(step) <= found->second.steps.size();
}

void step_log(Services& s, const LogQuery& q, http::Reply reply) {
    if (!may_have_step(s, q.build, q.step)) {
        reply.send(error_response(404, fmt::format("build {} has no step {}", q.build, q.step)));
        return;
    }
    auto snapshot = s.running.snapshot(q.build, q.step, nullptr, q.from.sequence);
    if (!snapshot) {
        stored_log(s, q, std::move(reply));
        return;
    }
    if (!snapshot->started && !(q.follow && snapshot->live)) {
        // Not started: a follower of a running build waits for it; anyone else gets a 404.
        reply.send(error_response(
            404, fmt::format("build {} has no step {} (not started)", q.build, q.step)));
        return;
    }
    auto output = log_output(q, reply);
    std::shared_ptr<Follower> follower;
    if (q.follow && snapshot->live) {
        // Registered with a second snapshot, taken under the same lock that feeds followers:
        // no chunk falls between what it is primed with and what it is sent.
        follower = std::make_shared<Follower>(output);
        snapshot = s.running.snapshot(q.build, q.step, follower, q.from.sequence);
        if (!snapshot) {
            snapshot = LogSnapshot{}; // ended and forgotten in between: the store has it all
            snapshot->in_store_before = std::numeric_limits<std::int64_t>::max();
        }
    }
    std::function<void()> done;
    if (follower && snapshot->live) {
        done = [follower] { follower->prime(); };
    } else {
        done = [output, result = snapshot->result] { output->end(result); };
    }
    s.reads.post(
        [q, output, done = std::move(done), snapshot = std::move(*snapshot), &reads = s.reads](
            store::Store& store) mutable {
            const auto to = snapshot.in_store_before;
            send_log(reads, store, q, output, to, std::move(snapshot), std::move(done));
        });
}

// Someone following one of a step's log files (?follow=1): sent what the store has of it, then
// what it gains each time the coordinator says more is stored, until the step ends. One read
// at a time; a read asked for meanwhile runs once after it, so nothing is sent twice or out of
// order.
class LogfileFollower final : public LogfileWatcher,
                              public std::enable_shared_from_this<LogfileFollower> {
public:
    LogfileFollower(ReadPool& reads,
                    std::shared_ptr<http::ResponseStream> stream,
                    std::int64_t build,
                    int step,
                    std::string name)
        : reads_(reads), stream_(std::move(stream)), build_(build), step_(step),
          name_(std::move(name)) {}

    void stored() override { pull(false); }
    void ended() override { pull(true); }

    // Reads the store now (or once the read in progress is done); `last`: then ends.
    void pull(bool last) {
        if (stream_->closed()) {
            return; // the client went away
        }
        {
            const std::lock_guard lock(mutex_);
            ending_ = ending_ || last;
            if (reading_) {
                again_ = true;
                return;
            }
            reading_ = true;
        }
        reads_.post([self = shared_from_this()](store::Store& store) { self->read(store); });
    }

private:
    void read(store::Store& store) {
        for (;;) {
            auto text = store.logfile(build_, step_, name_);
            const std::lock_guard lock(mutex_); // writes in order, one reader at a time
            if (!text) {
                stream_->write(
                    fmt::format("\n(the log file could not be read: {})\n", text.error().message));
                stream_->finish();
                reading_ = false;
                return;
            }
            if (*text && (*text)->size() > sent_) {
                stream_->write((*text)->substr(sent_));
                sent_ = (*text)->size();
            }
            if (again_ && !stream_->closed()) {
                again_ = false;
                continue;
            }
            reading_ = false;
            if (ending_ || stream_->closed()) {
                stream_->finish();
            }
            return;
        }
    }

    ReadPool& reads_;
    std::shared_ptr<http::ResponseStream> stream_;
    std::int64_t build_;
    int step_;
    std::string name_;
    std::mutex mutex_;
    std::size_t sent_ = 0; // bytes of the file sent
    bool reading_ = false;
    bool again_ = false;
    bool ending_ = false;
};

// Whether running build `id`'s builder has log file `name` in step `step`.
bool has_logfile(Services& s, std::int64_t id, int step, const std::string& name) {
    const auto builder = s.running.builder(id);
    const auto found = builder ? s.config.builders.find(*builder) : s.config.builders.end();
    if (found == s.config.builders.end() || step < 1 ||
        static_cast<std::size_t>(step) > found->second.steps.size()) {
        return false;
    }
    return found->second.steps[static_cast<std::size_t>(step) - 1].logfiles.contains(name);
}

// One of a step's log files (StepSpec::logfiles), as the store has it so far: the worker
// sends what the file gains about twice a second while the step runs. `follow` while the
// build runs: a chunked answer that goes on until the step ends.
void logfile(
    Services& s, std::int64_t id, int step, std::string name, bool follow, http::Reply reply) {
    if (follow && s.running.builder(id)) {
        if (!has_logfile(s, id, step, name)) {
            reply.send(error_response(
                404, fmt::format("build {} step {} has no log file \"{}\"", id, step, name)));
            return;
        }
        auto follower = std::make_shared<LogfileFollower>(
            s.reads,
            reply.stream(200, "text/plain; charset=utf-8", {{"Cache-Control", "no-cache"}}),
            id,
            step,
            name);
        // Registered first: whatever is stored after the first read is read again.
        if (s.running.watch_logfile(id, step, name, follower)) {
            follower->pull(false);
        } else {
            // Its step ended: read once what was queued for the store before is stored.
            s.writes.post(
                fmt::format("a read of log file {} of build {}", name, id),
                [](store::Store&) -> Status { return {}; },
                [follower] { follower->pull(true); });
        }
        return;
    }
    s.reads.post([reply, id, step, name = std::move(name)](store::Store& store) mutable {
        auto text = store.logfile(id, step, name);
        if (!text) {
            reply.send(error_response(500, text.error().message));
            return;
        }
        if (!*text) {
            reply.send(error_response(
                404, fmt::format("build {} step {} has no log file \"{}\"", id, step, name)));
            return;
        }
        http::ServerResponse response;
        response.content_type = "text/plain; charset=utf-8";
        response.body = std::move(**text);
        reply.send(std::move(response));
    });
}

} // namespace

BuildTotals build_totals(const store::BuildRequest* request,
                         const std::vector<store::Step>& steps) {
    BuildTotals out;
    if (request != nullptr) {
        out.properties = request->request.properties;
    }
    for (const auto& step : steps) {
        for (const auto& [name, value] : step.properties) {
            out.properties[name] = value;
        }
        if (step.tests) {
            out.tests = out.tests.value_or(build::TestResults{});
            out.tests->add(*step.tests);
        }
    }
    return out;
}

void add_build_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/builds",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            list(services, request, std::move(reply));
        },
        false,
        "/api/v1/builds");
    const auto with_id = [](const PathParams& params, http::Reply& reply) {
        const auto id = params.integer("id");
        if (!id) {
            reply.send(error_response(404, "build ids are integers"));
        }
        return id;
    };
    router.add(
        "GET",
        "/api/v1/builds/{id}",
        [&services, with_id](http::ServerRequest&, const PathParams& params, http::Reply reply) {
            if (const auto id = with_id(params, reply)) {
                one(services, *id, std::move(reply));
            }
        },
        false,
        "/api/v1/builds/{id}");
    router.add(
        "POST",
        "/api/v1/builds/{id}/stop",
        [&services,
         with_id](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            if (const auto id = with_id(params, reply)) {
                stop(services, request, *id, std::move(reply));
            }
        },
        true,
        "/api/v1/builds/{id}/stop (POST)");
    router.add(
        "POST",
        "/builds/{id}/stop",
        [&services,
         with_id](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            if (const auto id = with_id(params, reply)) {
                stop_form(services, request, *id, std::move(reply));
            }
        },
        Guard::Form,
        "/builds/{id}/stop (POST, a web UI form)");
    // The step number of a path, or a 404 sent.
    const auto with_step = [](const PathParams& params, http::Reply& reply) -> std::optional<int> {
        const auto step = params.integer("n");
        if (!step || *step > 100000) {
            reply.send(error_response(404, "step numbers are integers"));
            return std::nullopt;
        }
        return static_cast<int>(*step);
    };
    router.add(
        "GET",
        "/api/v1/builds/{id}/steps/{n}/logs/{name}",
        [&services, with_id, with_step](
            http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            const auto id = with_id(params, reply);
            const auto step = id ? with_step(params, reply) : std::nullopt;
            if (step) {
                logfile(services,
                        *id,
                        *step,
                        std::string(params.get("name")),
                        request.query.contains("follow"),
                        std::move(reply));
            }
        },
        false,
        "/api/v1/builds/{id}/steps/{n}/logs/{name}?follow=1");
    for (const bool events : {false, true}) {
        router.add(
            "GET",
            events ? "/api/v1/builds/{id}/steps/{n}/events" : "/api/v1/builds/{id}/steps/{n}/log",
            [&services, with_id, with_step, events](
                http::ServerRequest& request, const PathParams& params, http::Reply reply) {
                const auto id = with_id(params, reply);
                const auto step = id ? with_step(params, reply) : std::nullopt;
                if (!step) {
                    return;
                }
                LogQuery query{*id, *step, LogFormat::Text, request.query.contains("follow"), {}};
                if (events) {
                    query.follow = true;
                    const auto format = request.query.find("format");
                    query.format = format != request.query.end() && format->second == "html"
                                       ? LogFormat::HtmlEvents
                                       : LogFormat::TextEvents;
                    // Where the client was: an EventSource that reconnects says it in
                    // Last-Event-ID; a page that starts following says it in ?from=.
                    std::string_view from = request.header("last-event-id");
                    if (const auto found = request.query.find("from");
                        from.empty() && found != request.query.end()) {
                        from = found->second;
                    }
                    if (!from.empty()) {
                        const auto cursor = LogCursor::parse(from);
                        if (!cursor) {
                            reply.send(error_response(
                                400, fmt::format("not a log position: \"{}\"", from)));
                            return;
                        }
                        query.from = *cursor;
                    }
                }
                step_log(services, query, std::move(reply));
            },
            false,
            events ? "/api/v1/builds/{id}/steps/{n}/events?format=html&from=CURSOR"
                   : "/api/v1/builds/{id}/steps/{n}/log?follow=1");
    }
}

} // namespace ci::master
