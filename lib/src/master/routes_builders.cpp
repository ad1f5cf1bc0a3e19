// /api/v1/builders: the builders of the config with their queues, and forcing a build.

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include <ci/config/placeholders.h>
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

// The most properties a forced build takes, and the largest value (a property is an argument
// of a step, and the request is stored and sent to a worker with each build).
constexpr std::size_t max_forced_properties = 64;
constexpr std::size_t max_forced_value = std::size_t{64} * 1024;
// The longest `reason` of a force: a line or two for people, not a document.
constexpr std::size_t max_force_reason = 1024;

// What a force request's body says, checked; `error` set (a 400's message) when it is wrong.
struct ForceBody {
    std::string branch;
    std::string revision;
    std::string reason;
    std::map<std::string, std::string> properties;
    std::string error;
};

// "properties": an object of at most max_forced_properties names of [A-Za-z0-9_.-] (1 to 64
// characters) with strings (at most max_forced_value bytes) or booleans ("true"/"false").
std::string read_properties(const rapidjson::Value& value,
                            std::map<std::string, std::string>& out) {
    if (!value.IsObject()) {
        return "properties must be an object of strings and booleans";
    }
    if (value.MemberCount() > max_forced_properties) {
        return fmt::format(
            "properties: {} given, at most {}", value.MemberCount(), max_forced_properties);
    }
    for (const auto& member : value.GetObject()) {
        const std::string_view name(member.name.GetString(), member.name.GetStringLength());
        if (!config::valid_property_name(name)) {
            return fmt::format("properties: \"{}\": a property name is 1 to {} characters of "
                               "[A-Za-z0-9_.-]",
                               to_valid_utf8(std::string(name.substr(0, 80))),
                               config::max_property_name);
        }
        if (member.value.IsBool()) {
            out[std::string(name)] = member.value.GetBool() ? "true" : "false";
            continue;
        }
        if (!member.value.IsString()) {
            return fmt::format("properties.{}: must be a string or a boolean", name);
        }
        const std::string_view text(member.value.GetString(), member.value.GetStringLength());
        if (text.size() > max_forced_value) {
            return fmt::format(
                "properties.{}: {} bytes, at most {}", name, text.size(), max_forced_value);
        }
        if (text.find('\0') != std::string_view::npos || first_invalid_utf8(text)) {
            return fmt::format("properties.{}: must be UTF-8 text without NUL", name);
        }
        out[std::string(name)] = std::string(text);
    }
    return {};
}

ForceBody read_force_body(const rapidjson::Value& body) {
    ForceBody out;
    const auto branch = json::string_member(body, "branch");
    const auto revision = json::string_member(body, "revision");
    const auto reason = json::string_member(body, "reason");
    if (!branch || !revision || !reason) {
        out.error = "branch, revision and reason must be strings";
        return out;
    }
    out.branch = branch->value_or("");
    out.revision = revision->value_or("");
    out.reason = to_valid_utf8(reason->value_or(""));
    if (out.reason.size() > max_force_reason) {
        out.error =
            fmt::format("reason: {} bytes, at most {}", out.reason.size(), max_force_reason);
        return out;
    }
    // What a webhook could not bring either: a branch git would refuse, a revision that is no
    // commit id (issue 14: megabytes of either made a build spec no worker accepts).
    if (!out.branch.empty()) {
        if (auto valid = git::check_ref_format("refs/heads/" + out.branch); !valid) {
            out.error = "branch: " + valid.error().message;
            return out;
        }
    }
    if (!out.revision.empty() && !git::is_commit_id(out.revision)) {
        out.error = "revision: not a commit id (1 to 64 hex digits)";
        return out;
    }
    if (const auto properties = body.FindMember("properties"); properties != body.MemberEnd()) {
        out.error = read_properties(properties->value, out.properties);
    }
    if (out.reason.empty()) {
        out.reason = "forced through the API";
    }
    return out;
}

// Submits `forced`, answering 202 with the ids of the requests it queued.
void submit_force(Services& s, sched::ForceRequest forced, http::Reply reply) {
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
    auto read = read_force_body(*body);
    if (!read.error.empty()) {
        reply.send(error_response(400, read.error));
        return;
    }
    sched::ForceRequest forced;
    forced.builders = {builder};
    forced.repository = found->second.repository;
    forced.branch = std::move(read.branch);
    if (forced.branch.empty() && !forced.repository.empty()) { // none: no repository
        forced.branch = s.config.repositories.at(forced.repository).default_branch;
    }
    forced.revision = std::move(read.revision);
    forced.reason = std::move(read.reason);
    forced.properties = std::move(read.properties);
    submit_force(s, std::move(forced), std::move(reply));
}

// POST /api/v1/force: several builders at once ({"builders": [...]}, with the single force's
// other keys), all or nothing: one builder that cannot be forced queues none.
void force_many(Services& s, const http::ServerRequest& request, http::Reply reply) {
    auto body = json::parse_object(request.body.empty() ? std::string_view("{}") : request.body);
    if (!body) {
        reply.send(error_response(
            400, fmt::format("the body must be a JSON object: {}", body.error().message)));
        return;
    }
    const auto builders = body->FindMember("builders");
    if (builders == body->MemberEnd() || !builders->value.IsArray() || builders->value.Empty()) {
        reply.send(error_response(400, "builders: a list of builder names is required"));
        return;
    }
    sched::ForceRequest forced;
    std::set<std::string> repositories;
    for (const auto& name : builders->value.GetArray()) {
        if (!name.IsString()) {
            reply.send(error_response(400, "builders: every builder name must be a string"));
            return;
        }
        const std::string builder(name.GetString(), name.GetStringLength());
        const auto found = s.config.builders.find(builder);
        if (found == s.config.builders.end()) {
            reply.send(
                error_response(400,
                               fmt::format("builders: no builder \"{}\" (nothing was forced)",
                                           to_valid_utf8(builder.substr(0, 200)))));
            return;
        }
        if (std::ranges::find(forced.builders, builder) == forced.builders.end()) {
            forced.builders.push_back(builder);
            repositories.insert(found->second.repository);
        }
    }
    auto read = read_force_body(*body);
    if (!read.error.empty()) {
        reply.send(error_response(400, read.error));
        return;
    }
    if (!read.revision.empty() && repositories.size() > 1) {
        reply.send(error_response(400,
                                  "revision: the builders build more than one repository; force "
                                  "them by branch, or one repository at a time"));
        return;
    }
    // An empty repository and branch: each builder's own repository and its default branch
    // (the scheduler fills them in).
    forced.branch = std::move(read.branch);
    forced.revision = std::move(read.revision);
    forced.reason = std::move(read.reason);
    forced.properties = std::move(read.properties);
    submit_force(s, std::move(forced), std::move(reply));
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
    router.add(
        "POST",
        "/api/v1/force",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            force_many(services, request, std::move(reply));
        },
        true,
        "/api/v1/force (POST)");
}

} // namespace ci::master
