// /api/v1/workers: every worker the master knows (live state from the registry, the rest from
// the store), and one-time tokens for EC2 latent workers.

#include <algorithm>

#include "core/json.h"
#include "master/json.h"
#include "master/services.h"
#include "master/ui.h"

namespace ci::master {

namespace {

// An EC2 worker's instance: id, type, market, launch time and state.
void add_instance(Json& json, Services& s, const std::string& worker) {
    if (s.ec2 == nullptr) {
        return;
    }
    const auto instance = s.ec2->instance_of(worker);
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

void list(Services& s, http::Reply reply) {
    s.reads.post([&s, reply](store::Store& store) mutable {
        auto stored = store.workers();
        if (!stored) {
            reply.send(error_response(500, stored.error().message));
            return;
        }
        Json json;
        json.begin().begin_array("workers");
        for (const auto& record : *stored) {
            const auto live = s.workers.view(record.name);
            json.begin()
                .field("name", record.name)
                .field("class", record.worker_class)
                .field("connected", live.has_value())
                .field("local", live && live->local)
                .field("state", live ? std::string_view(live->state()) : record.state)
                .time("last_seen", record.last_seen)
                .ids("builds", live ? live->builds : std::vector<std::int64_t>())
                .field("max_builds", class_max_builds(s.config, record.worker_class));
            add_instance(json, s, record.name);
            json.end();
        }
        // Instances whose worker never connected (no worker record yet) are listed too.
        if (s.ec2 != nullptr) {
            for (const auto& instance : s.ec2->instances()) {
                const bool listed = std::ranges::any_of(
                    *stored, [&](const auto& record) { return record.name == instance.worker; });
                if (listed || instance.worker.empty()) {
                    continue;
                }
                json.begin()
                    .field("name", instance.worker)
                    .field("class", instance.worker_class)
                    .field("connected", false)
                    .field("local", false)
                    .field("state", std::string_view("not connected"))
                    .ids("builds", {})
                    .field("max_builds", class_max_builds(s.config, instance.worker_class));
                add_instance(json, s, instance.worker);
                json.end();
            }
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
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
}

} // namespace ci::master
