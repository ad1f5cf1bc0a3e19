// /api/v1/builders: the builders of the config with their queues, and forcing a build.

#include <fmt/format.h>

#include <ci/core/log.h>

#include "core/json.h"
#include "core/utf8.h"
#include "git/ref_name.h"
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

void force(Services& s,
           const http::ServerRequest& request,
           const std::string& builder,
           http::Reply reply) {
    const auto found = s.config.builders.find(builder);
    if (found == s.config.builders.end()) {
        reply.send(error_response(404, fmt::format("no builder \"{}\"", builder)));
        return;
    }
    auto body = json::parse_object(request.body.empty() ? std::string_view("{}") : request.body);
    if (!body) {
        reply.send(error_response(
            400, fmt::format("the body must be a JSON object: {}", body.error().message)));
        return;
    }
    const auto branch = json::string_member(*body, "branch");
    const auto revision = json::string_member(*body, "revision");
    const auto reason = json::string_member(*body, "reason");
    if (!branch || !revision || !reason) {
        reply.send(error_response(400, "branch, revision and reason must be strings"));
        return;
    }
    // What a webhook could not bring either: a branch git would refuse, a revision that is no
    // commit id (issue 14: megabytes of either made a build spec no worker accepts).
    if (const auto& name = branch->value_or(""); !name.empty()) {
        if (auto valid = git::check_ref_format("refs/heads/" + name); !valid) {
            reply.send(error_response(400, "branch: " + valid.error().message));
            return;
        }
    }
    if (const auto& id = revision->value_or(""); !id.empty() && !git::is_commit_id(id)) {
        reply.send(error_response(400, "revision: not a commit id (1 to 64 hex digits)"));
        return;
    }
    sched::ForceRequest forced;
    if (const auto properties = body->FindMember("properties"); properties != body->MemberEnd()) {
        // Strings, or booleans as "true"/"false" (report_expected_failures: true).
        bool valid = properties->value.IsObject();
        for (auto it = valid ? properties->value.MemberBegin() : properties->value.MemberEnd();
             valid && it != properties->value.MemberEnd();
             ++it) {
            std::string name = to_valid_utf8({it->name.GetString(), it->name.GetStringLength()});
            if (it->value.IsString()) {
                forced.properties[name] =
                    to_valid_utf8({it->value.GetString(), it->value.GetStringLength()});
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
    forced.branch = branch->value_or("");
    if (forced.branch.empty() && !forced.repository.empty()) { // none: no repository
        forced.branch = s.config.repositories.at(forced.repository).default_branch;
    }
    forced.revision = revision->value_or("");
    forced.reason = to_valid_utf8(reason->value_or(""));
    if (forced.reason.empty()) {
        forced.reason = "forced through the API";
    }
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
