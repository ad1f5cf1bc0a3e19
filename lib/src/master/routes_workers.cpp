// /api/v1/workers: every worker the master knows (live state from the registry, the rest from
// the store), and one-time tokens for EC2 latent workers.

#include "core/json.h"
#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

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
                .end();
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
