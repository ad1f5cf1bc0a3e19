// /api/v1/builders: the builders of the config with their queues, and forcing a build.

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include <ci/config/placeholders.h>
#include <ci/core/log.h>
#include <ci/http/request.h>

#include "core/json.h"
#include "core/utf8.h"
#include "git/ref_name.h"
#include "master/forms.h"
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

// What a force asks for (read from a JSON body or a form); `error` set (a 400's message) when
// it is wrong.
struct ForceBody {
    std::string branch;
    std::string revision;
    std::string reason;
    std::map<std::string, std::string> properties;
    std::string error;
};

// The properties' rules (docs/api.md): at most max_forced_properties names of [A-Za-z0-9_.-]
// (1 to 64 characters) with values of at most max_forced_value bytes of UTF-8 without NUL.
std::string check_properties(const std::map<std::string, std::string>& properties) {
    if (properties.size() > max_forced_properties) {
        return fmt::format(
            "properties: {} given, at most {}", properties.size(), max_forced_properties);
    }
    for (const auto& [name, text] : properties) {
        if (!config::valid_property_name(name)) {
            return fmt::format("properties: \"{}\": a property name is 1 to {} characters of "
                               "[A-Za-z0-9_.-]",
                               to_valid_utf8(name.substr(0, 80)),
                               config::max_property_name);
        }
        if (text.size() > max_forced_value) {
            return fmt::format(
                "properties.{}: {} bytes, at most {}", name, text.size(), max_forced_value);
        }
        if (text.find('\0') != std::string::npos || first_invalid_utf8(text)) {
            return fmt::format("properties.{}: must be UTF-8 text without NUL", name);
        }
    }
    return {};
}

// "properties" of a JSON body: an object of strings and booleans ("true"/"false").
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
        std::string name(member.name.GetString(), member.name.GetStringLength());
        if (member.value.IsBool()) {
            out[std::move(name)] = member.value.GetBool() ? "true" : "false";
        } else if (member.value.IsString()) {
            out[std::move(name)] =
                std::string(member.value.GetString(), member.value.GetStringLength());
        } else if (config::valid_property_name(name)) {
            return fmt::format("properties.{}: must be a string or a boolean", name);
        } else {
            out[std::move(name)]; // check_properties names the bad name
        }
    }
    return {};
}

// Checks what read_force_json or read_force_form read (the rules both share).
void check_force_body(ForceBody& out) {
    if (!out.error.empty()) {
        return;
    }
    out.reason = to_valid_utf8(out.reason);
    if (out.reason.size() > max_force_reason) {
        out.error =
            fmt::format("reason: {} bytes, at most {}", out.reason.size(), max_force_reason);
        return;
    }
    // What a webhook could not bring either: a branch git would refuse, a revision that is no
    // commit id (issue 14: megabytes of either made a build spec no worker accepts).
    if (!out.branch.empty()) {
        if (auto valid = git::check_ref_format("refs/heads/" + out.branch); !valid) {
            out.error = "branch: " + valid.error().message;
            return;
        }
    }
    if (!out.revision.empty() && !git::is_commit_id(out.revision)) {
        out.error = "revision: not a commit id (1 to 64 hex digits)";
        return;
    }
    out.error = check_properties(out.properties);
}

ForceBody read_force_json(const rapidjson::Value& body) {
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
    out.reason = reason->value_or("");
    if (const auto properties = body.FindMember("properties"); properties != body.MemberEnd()) {
        out.error = read_properties(properties->value, out.properties);
    }
    check_force_body(out);
    if (out.reason.empty()) {
        out.reason = "forced through the API";
    }
    return out;
}

// The web UI's force form: branch, revision, reason, properties as `name=value` lines, and
// expected_failures=on (the property report_expected_failures).
ForceBody read_force_form(const Form& form) {
    ForceBody out;
    out.branch = std::string(form.get("branch"));
    out.revision = std::string(form.get("revision"));
    out.reason = std::string(form.get("reason"));
    auto lines = form.get("properties");
    while (!lines.empty() && out.error.empty()) {
        const auto newline = lines.find('\n');
        auto line = lines.substr(0, newline);
        lines = newline == std::string_view::npos ? std::string_view() : lines.substr(newline + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.find_first_not_of(" \t") == std::string_view::npos) {
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string_view::npos) {
            out.error = fmt::format("properties: \"{}\": each line is NAME=VALUE",
                                    to_valid_utf8(std::string(line.substr(0, 80))));
            break;
        }
        out.properties[std::string(line.substr(0, equals))] = std::string(line.substr(equals + 1));
    }
    if (form.get("expected_failures") == "on") {
        out.properties["report_expected_failures"] = "true";
    }
    check_force_body(out);
    if (out.reason.empty()) {
        out.reason = "forced in the web UI";
    }
    return out;
}

// What a force ended with: the requests it queued (status 202), or a status and why not.
struct ForceResult {
    int status = 202;
    std::string error;
    std::vector<std::int64_t> requests;
};
using ForceDone = std::function<void(const ForceResult&)>;

// The core of every force (the JSON API's and the web UI's): `builders` (one: the route
// /builders/NAME/force, whose unknown builder is a 404; several: all or nothing, an unknown
// one is a 400) forced with `read`, as `who`.
void force_builders(Services& s,
                    const std::vector<std::string>& builders,
                    bool one,
                    ForceBody read,
                    std::string who,
                    ForceDone done) {
    sched::ForceRequest forced;
    std::set<std::string> repositories;
    for (const auto& builder : builders) {
        const auto found = s.config.builders.find(builder);
        if (found == s.config.builders.end()) {
            done(one ? ForceResult{404, fmt::format("no builder \"{}\"", builder), {}}
                     : ForceResult{400,
                                   fmt::format("builders: no builder \"{}\" (nothing was forced)",
                                               to_valid_utf8(builder.substr(0, 200))),
                                   {}});
            return;
        }
        if (std::ranges::find(forced.builders, builder) == forced.builders.end()) {
            forced.builders.push_back(builder);
            repositories.insert(found->second.repository);
        }
    }
    if (forced.builders.empty()) {
        done({400, "builders: a list of builder names is required", {}});
        return;
    }
    if (!read.error.empty()) {
        done({400, std::move(read.error), {}});
        return;
    }
    if (!read.revision.empty() && repositories.size() > 1) {
        done({400,
              "revision: the builders build more than one repository; force them by branch, or "
              "one repository at a time",
              {}});
        return;
    }
    forced.branch = std::move(read.branch);
    if (one) {
        // Several builders: an empty repository and branch mean each builder's own repository
        // and its default branch (the scheduler fills them in).
        forced.repository = *repositories.begin();
        if (forced.branch.empty() && !forced.repository.empty()) { // none: no repository
            forced.branch = s.config.repositories.at(forced.repository).default_branch;
        }
    }
    forced.revision = std::move(read.revision);
    forced.reason = std::move(read.reason);
    forced.properties = std::move(read.properties);
    forced.who = std::move(who);
    s.ingestor.submit(
        std::move(forced), {}, [done = std::move(done)](Result<store::Receipt> receipt) {
            if (!receipt) {
                done({receipt.error().code == ErrorCode::InvalidArgument ? 400 : 503,
                      receipt.error().message,
                      {}});
                return;
            }
            done({202, {}, receipt->request_ids});
        });
}

// The JSON API's answer to a force.
ForceDone json_answer(http::Reply reply) {
    return [reply](const ForceResult& result) mutable {
        if (!result.error.empty()) {
            reply.send(error_response(result.status, result.error));
            return;
        }
        Json json;
        json.begin().ids("requests", result.requests).end();
        reply.send(json_response(202, json.text()));
    };
}

// POST /api/v1/builders/{name}/force and POST /api/v1/force (`{"builders": [...]}` with the
// single force's other keys).
void force_json(Services& s,
                const http::ServerRequest& request,
                std::optional<std::string> builder,
                http::Reply reply) {
    auto body = json::parse_object(request.body.empty() ? std::string_view("{}") : request.body);
    if (!body) {
        reply.send(error_response(
            400, fmt::format("the body must be a JSON object: {}", body.error().message)));
        return;
    }
    std::vector<std::string> builders;
    if (builder) {
        builders.push_back(std::move(*builder));
    } else {
        const auto list = body->FindMember("builders");
        if (list == body->MemberEnd() || !list->value.IsArray() || list->value.Empty()) {
            reply.send(error_response(400, "builders: a list of builder names is required"));
            return;
        }
        for (const auto& name : list->value.GetArray()) {
            if (!name.IsString()) {
                reply.send(error_response(400, "builders: every builder name must be a string"));
                return;
            }
            builders.emplace_back(name.GetString(), name.GetStringLength());
        }
    }
    const bool one = builder.has_value();
    force_builders(s,
                   builders,
                   one,
                   read_force_json(*body),
                   api_user(s, request),
                   json_answer(std::move(reply)));
}

// POST /builders/{name}/force and POST /force (`builder` repeated): the web UI's force forms.
// Success: 303 to the page the form was on (else the builder's page, or the home page).
void force_form(Services& s,
                const http::ServerRequest& request,
                std::optional<std::string> builder,
                http::Reply reply) {
    with_form(s, request, reply, {"builder"}, [&](const Form& form, const Viewer& viewer) {
        std::vector<std::string> builders;
        if (builder) {
            builders.push_back(*builder);
        } else {
            for (const auto name : form.all("builder")) {
                builders.emplace_back(name);
            }
        }
        auto frame = page_frame(s, request, "Force");
        const auto back = came_from(
            request, builder ? "/builders/" + http::uri_encode(*builder) : std::string("/"));
        force_builders(s,
                       builders,
                       builder.has_value(),
                       read_force_form(form),
                       viewer.user,
                       [reply, back, frame](const ForceResult& result) mutable {
                           reply.send(result.error.empty()
                                          ? see_other(back)
                                          : form_error(frame, result.status, result.error));
                       });
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
            force_json(services, request, std::string(params.get("name")), std::move(reply));
        },
        true,
        "/api/v1/builders/{name}/force (POST)");
    router.add(
        "POST",
        "/api/v1/force",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            force_json(services, request, std::nullopt, std::move(reply));
        },
        true,
        "/api/v1/force (POST)");
    router.add(
        "POST",
        "/builders/{name}/force",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            force_form(services, request, std::string(params.get("name")), std::move(reply));
        },
        Guard::Form,
        "/builders/{name}/force (POST, a web UI form)");
    router.add(
        "POST",
        "/force",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            force_form(services, request, std::nullopt, std::move(reply));
        },
        Guard::Form,
        "/force (POST, a web UI form)");
}

} // namespace ci::master
