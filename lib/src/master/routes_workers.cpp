// /api/v1/workers: every worker the master knows (live state from the registry, the rest from
// the store), one of them, one-time tokens for EC2 latent workers, and what a user may do to
// a worker (pause, resume, shutdown: worker_actions.h).

#include <algorithm>
#include <set>
#include <variant>

#include <fmt/format.h>

#include "core/json.h"
#include "master/json.h"
#include "master/services.h"
#include "master/ui.h"
#include "master/worker_actions.h"

namespace ci::master {

namespace {

// An EC2 worker's instance: id, type, market, launch time and state.
void add_instance(Json& json, const std::optional<InstanceView>& instance) {
    if (!instance) {
        return;
    }
    json.key("instance")
        .begin()
        .field("id", instance->instance_id)
        .field("type", instance->instance_type)
        .field("market", instance->market)
        .time("launched", instance->launched)
        .field("state", instance->state)
        .end();
}

void write_worker(Json& json, Services& s, const ListedWorker& worker) {
    const auto& live = worker.live;
    json.begin()
        .field("name", worker.name)
        .field("class", worker.worker_class)
        .field("connected", live.has_value())
        .field("local", live && live->local)
        .field("state", worker.state)
        .field("paused", live ? live->paused : s.workers.paused(worker.name))
        .time("last_seen", worker.last_seen)
        .ids("builds", live ? live->builds : std::vector<std::int64_t>())
        .field("max_builds", class_max_builds(s.config, worker.worker_class));
    add_instance(json, worker.instance);
    json.end();
}

void list(Services& s, http::Reply reply) {
    s.reads.post([&s, reply](store::Store& store) mutable {
        auto stored = store.workers();
        if (!stored) {
            reply.send(error_response(500, stored.error().message));
            return;
        }
        Json json;
        json.begin().begin_array("workers");
        for (const auto& worker : listed_workers(s, *stored)) {
            write_worker(json, s, worker);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
    });
}

// GET /api/v1/workers/NAME (a name has a '/': the rest of the path is the name).
void show(Services& s, std::string name, http::Reply reply) {
    s.reads.post([&s, name = std::move(name), reply](store::Store& store) mutable {
        auto stored = store.workers();
        if (!stored) {
            reply.send(error_response(500, stored.error().message));
            return;
        }
        for (const auto& worker : listed_workers(s, *stored)) {
            if (worker.name == name) {
                Json json;
                write_worker(json, s, worker);
                reply.send(json_response(200, json.text()));
                return;
            }
        }
        reply.send(error_response(404, fmt::format("no worker {}", name)));
    });
}

// The core of a worker action, the JSON API's and the web UI's: `rest` is "NAME/ACTION" (the
// path's last segment is the action, the rest the name), done by `who`; `done` gets the outcome
// and the name, on a reader thread (404 for an unknown action).
void act_on(Services& s,
            std::string_view rest,
            std::string who,
            std::function<void(const WorkerActionResult& result, const std::string& name)> done) {
    const auto slash = rest.rfind('/');
    const auto action = slash == std::string_view::npos
                            ? std::nullopt
                            : parse_worker_action(rest.substr(slash + 1));
    if (!action) {
        done(
            WorkerActionResult{
                404, "POST /api/v1/workers/NAME/pause, /resume or /shutdown: no such action"},
            std::string(rest));
        return;
    }
    s.reads.post([&s,
                  name = std::string(rest.substr(0, slash)),
                  action = *action,
                  who = std::move(who),
                  done = std::move(done)](store::Store& store) {
        done(act_on_worker(s, store, name, action, who), name);
    });
}

// POST /api/v1/workers/NAME/ACTION.
void act(Services& s,
         const http::ServerRequest& request,
         std::string_view rest,
         http::Reply reply) {
    act_on(s,
           rest,
           api_user(s, request),
           [&s, reply](const WorkerActionResult& done, const std::string& name) mutable {
               if (done.status != 200) {
                   reply.send(error_response(done.status, done.message));
                   return;
               }
               const auto live = s.workers.view(name);
               Json json;
               json.begin()
                   .field("name", name)
                   .field("connected", live.has_value())
                   .field("state", live ? live->state() : "not connected")
                   .field("paused", s.workers.paused(name));
               json.field("message", done.message).end();
               reply.send(json_response(200, json.text()));
           });
}

// POST /workers/NAME/ACTION: the workers page's forms; 303 back to the page.
void act_form(Services& s,
              const http::ServerRequest& request,
              std::string_view rest,
              http::Reply reply) {
    with_form(s, request, reply, {}, [&](const Form&, const Viewer& viewer) {
        act_on(s,
               rest,
               viewer.user,
               [reply,
                back = came_from(request, "/workers"),
                frame = page_frame(s, request, "Workers")](const WorkerActionResult& done,
                                                           const std::string&) mutable {
                   reply.send(done.status == 200 ? see_other(back)
                                                 : form_error(frame, done.status, done.message));
               });
    });
}

void issue_token(Services& s, const http::ServerRequest& request, http::Reply reply) {
    const auto body = json::parse_object(request.body);
    const auto member = [&](const char* key) {
        return body ? json::text_or_empty(*body, key) : std::string();
    };
    const auto worker_class = member("class");
    if (worker_class.empty()) {
        reply.send(error_response(400, R"(the body must be {"class": "<EC2 worker class>"})"));
        return;
    }
    auto issued = s.credentials.issue_token(worker_class, member("name"), std::chrono::minutes(15));
    if (!issued) {
        reply.send(error_response(issued.error().code == ErrorCode::Conflict ? 409 : 400,
                                  issued.error().message));
        return;
    }
    Json json;
    json.begin()
        .field("name", issued->name)
        .field("token", issued->token)
        .time("expires", issued->expires)
        .end();
    reply.send(json_response(201, json.text()));
}

} // namespace

std::vector<ListedWorker> listed_workers(Services& s,
                                         const std::vector<store::WorkerRecord>& stored) {
    std::vector<ListedWorker> out;
    std::set<std::string, std::less<>> names;
    // An instance's state, when it tells more than a stored `lost`: the pool stopped it.
    const auto offline_state = [](const std::optional<InstanceView>& instance,
                                  const std::string& fallback) {
        if (instance && (instance->state == "stopping" || instance->state == "stopped")) {
            return instance->state;
        }
        return fallback;
    };
    const auto instance_of = [&s](const std::string& name) -> std::optional<InstanceView> {
        return s.ec2 != nullptr ? s.ec2->instance_of(name) : std::nullopt;
    };
    for (const auto& record : stored) {
        ListedWorker worker{record.name,
                            record.worker_class,
                            s.workers.view(record.name),
                            instance_of(record.name),
                            "",
                            record.last_seen};
        worker.state = worker.live ? std::string(worker.live->state())
                                   : offline_state(worker.instance, record.state);
        names.insert(record.name);
        out.push_back(std::move(worker));
    }
    if (s.ec2 != nullptr) {
        for (auto& instance : s.ec2->instances()) {
            if (instance.worker.empty() || !names.insert(instance.worker).second) {
                continue;
            }
            ListedWorker worker{instance.worker,
                                instance.worker_class,
                                std::nullopt,
                                std::nullopt,
                                offline_state(instance, "never connected"),
                                std::nullopt};
            worker.instance = std::move(instance);
            out.push_back(std::move(worker));
        }
    }
    for (const auto& [worker_class, workers] : s.config.slaves) {
        const auto* const fixed = std::get_if<config::StaticWorkers>(&workers);
        if (fixed == nullptr) {
            continue;
        }
        for (std::size_t i = 0; i < fixed->passwords.size(); ++i) {
            auto name = fmt::format("{}/{}", worker_class, i);
            if (names.insert(name).second) {
                out.push_back(ListedWorker{std::move(name),
                                           worker_class,
                                           std::nullopt,
                                           std::nullopt,
                                           "never connected",
                                           std::nullopt});
            }
        }
    }
    return out;
}

void add_worker_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/workers",
        [&services](http::ServerRequest&, const PathParams&, http::Reply reply) {
            list(services, std::move(reply));
        },
        false,
        "/api/v1/workers");
    router.add(
        "POST",
        "/api/v1/workers/tokens",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            issue_token(services, request, std::move(reply));
        },
        true,
        "/api/v1/workers/tokens (POST)");
    // After /tokens: a worker's name has a '/' ("<class>/<i>"), so the rest of the path is
    // captured and split here.
    router.add(
        "GET",
        "/api/v1/workers/{name...}",
        [&services](http::ServerRequest&, const PathParams& params, http::Reply reply) {
            show(services, std::string(params.get("name")), std::move(reply));
        },
        false,
        "/api/v1/workers/{name}");
    router.add(
        "POST",
        "/api/v1/workers/{rest...}",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            act(services, request, params.get("rest"), std::move(reply));
        },
        Guard::Authenticated,
        "/api/v1/workers/{name}/pause|resume|shutdown (POST)");
    router.add(
        "POST",
        "/workers/{rest...}",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            act_form(services, request, params.get("rest"), std::move(reply));
        },
        Guard::Form,
        "/workers/{name}/pause|resume|shutdown (POST, a web UI form)");
}

} // namespace ci::master
