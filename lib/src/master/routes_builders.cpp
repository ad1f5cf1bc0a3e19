// /api/v1/builders: the builders of the config with their queues, and forcing a build.

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <ci/core/log.h>

#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

// Pending requests by builder, read from the store (on a reader thread).
Result<std::map<std::string, int>> pending_by_builder(store::Store& store) {
    auto pending = store.requests(store::RequestState::Pending);
    if (!pending) {
        return fail(pending.error());
    }
    std::map<std::string, int> out;
    for (const auto& request : *pending) {
        ++out[request.request.builder];
    }
    return out;
}

void list_builders(Services& s, http::Reply reply) {
    s.reads.post([&s, reply](store::Store& store) mutable {
        auto pending = pending_by_builder(store);
        if (!pending) {
            reply.send(error_response(500, pending.error().message));
            return;
        }
        std::map<std::string, int> running;
        for (const auto& build : s.running.builds()) {
            ++running[build.builder];
        }
        Json json;
        json.begin().begin_array("builders");
        for (const auto& [name, builder] : s.config.builders) {
            std::vector<std::string> steps;
            steps.reserve(builder.steps.size());
            for (const auto& step : builder.steps) {
                steps.push_back(step.name);
            }
            json.begin()
                .field("name", name)
                .field("repository", builder.repository)
                .strings("workers", builder.workers)
                .strings("locks", builder.locks)
                .field("pending", (*pending)[name])
                .field("running", running[name])
                .strings("steps", steps)
                .end();
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
    });
}

// A string member of the force body: "" when absent, nullopt when not a string.
std::optional<std::string> text_member(const rapidjson::Document& body, const char* key) {
    const auto member = body.FindMember(key);
    if (member == body.MemberEnd()) {
        return std::string();
    }
    if (!member->value.IsString()) {
        return std::nullopt;
    }
    return std::string(member->value.GetString(), member->value.GetStringLength());
}

void force(Services& s,
           const http::ServerRequest& request,
           const std::string& builder,
           http::Reply reply) {
    const auto found = s.config.builders.find(builder);
    if (found == s.config.builders.end()) {
        reply.send(error_response(404, fmt::format("no builder \"{}\"", builder)));
        return;
    }
    rapidjson::Document body;
    if (!request.body.empty()) {
        body.Parse(request.body.data(), request.body.size());
        if (body.HasParseError() || !body.IsObject()) {
            reply.send(error_response(400, "the body must be a JSON object"));
            return;
        }
    } else {
        body.SetObject();
    }
    const auto branch = text_member(body, "branch");
    const auto revision = text_member(body, "revision");
    const auto reason = text_member(body, "reason");
    if (!branch || !revision || !reason) {
        reply.send(error_response(400, "branch, revision and reason must be strings"));
        return;
    }
    sched::ForceRequest forced;
    if (const auto properties = body.FindMember("properties"); properties != body.MemberEnd()) {
        // Strings, or booleans as "true"/"false" (report_expected_failures: true).
        bool valid = properties->value.IsObject();
        for (auto it = valid ? properties->value.MemberBegin() : properties->value.MemberEnd();
             valid && it != properties->value.MemberEnd();
             ++it) {
            std::string name(it->name.GetString(), it->name.GetStringLength());
            if (it->value.IsString()) {
                forced.properties[name] =
                    std::string(it->value.GetString(), it->value.GetStringLength());
            } else if (it->value.IsBool()) {
                forced.properties[name] = it->value.GetBool() ? "true" : "false";
            } else {
                valid = false;
            }
        }
        if (!valid) {
            reply.send(error_response(400, "properties must be an object of strings and booleans"));
            return;
        }
    }
    forced.builders = {builder};
    forced.repository = found->second.repository;
    forced.branch =
        branch->empty() ? s.config.repositories.at(forced.repository).default_branch : *branch;
    forced.revision = *revision;
    forced.reason = reason->empty() ? "forced through the API" : *reason;
    forced.who = api_user(s);
    s.ingestor.submit(std::move(forced), {}, [reply](Result<store::Receipt> receipt) mutable {
        if (!receipt) {
            reply.send(
                error_response(receipt.error().code == ErrorCode::InvalidArgument ? 400 : 503,
                               receipt.error().message));
            return;
        }
        Json json;
        json.begin().ids("requests", receipt->request_ids).end();
        reply.send(json_response(202, json.text()));
    });
}

} // namespace

void add_builder_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/builders",
        [&services](http::ServerRequest&, const PathParams&, http::Reply reply) {
            list_builders(services, std::move(reply));
        },
        false,
        "/api/v1/builders");
    router.add(
        "POST",
        "/api/v1/builders/{name}/force",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            force(services, request, std::string(params.get("name")), std::move(reply));
        },
        true,
        "/api/v1/builders/{name}/force (POST)");
}

} // namespace ci::master
