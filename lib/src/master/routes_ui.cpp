// The web UI's pages (server-rendered HTML; lib/src/web renders them) and its static assets.
// Every datum a page shows is also in the JSON API (docs/api.md). Store reads go through the
// read pool, never on the HTTP thread.

#include <algorithm>
#include <array>
#include <variant>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ci/core/log.h>
#include <ci/http/request.h>

#include "master/json.h"
#include "master/services.h"
#include "master/ui.h"
#include "web/assets.h"
#include "web/badge.h"
#include "web/grid.h"
#include "web/page.h"

namespace ci::master {

namespace {

// GET /static/NAME: an embedded asset (not a template). Its ETag is its content hash; asked for
// with that hash (?v=HASH, as pages link it) it may be cached for good, else revalidated.
http::ServerResponse static_asset(const http::ServerRequest& request, std::string_view name) {
    const auto* asset = web::find_asset(name);
    if (asset == nullptr || name.ends_with(".mustache")) {
        http::ServerResponse missing;
        missing.status = 404;
        missing.content_type = "text/plain; charset=utf-8";
        missing.body = "no such file\n";
        return missing;
    }
    http::ServerResponse response;
    response.content_type = std::string(asset->content_type);
    const auto etag = fmt::format("\"{}\"", asset->hash);
    response.headers.emplace_back("ETag", etag);
    response.headers.emplace_back("X-Content-Type-Options", "nosniff");
    const auto version = request.query.find("v");
    const bool pinned = version != request.query.end() && version->second == asset->hash;
    response.headers.emplace_back("Cache-Control",
                                  pinned ? "public, max-age=31536000, immutable" : "no-cache");
    if (request.header("if-none-match") == etag) {
        response.status = 304;
        return response;
    }
    response.body = std::string(asset->bytes);
    return response;
}

std::string time_text(WallTime t) {
    return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", std::chrono::floor<std::chrono::seconds>(t));
}

std::string build_href(std::int64_t id) {
    return fmt::format("/builds/{}", id);
}

std::string builder_href(std::string_view name) {
    return "/builders/" + http::uri_encode(name);
}

constexpr std::array<std::string_view, 7> result_names = {
    "success", "warnings", "failure", "exception", "cancelled", "retry", "running"};

// The grid's filters from the query (?repository=R&result=X&branches=N), each empty for all.
// A `branches` that is not an integer in 1-500, a `result` that is not one of result_names and
// a `repository` the config lacks are errors naming the parameter and what it may be (a 400:
// not an empty grid that reads as "no builds").
Result<web::GridFilter> grid_filter(const config::Config& config,
                                    const http::ServerRequest& request) {
    web::GridFilter filter;
    if (const auto found = request.query.find("repository"); found != request.query.end()) {
        filter.repository = found->second;
    }
    if (!filter.repository.empty() && !config.repositories.contains(filter.repository)) {
        std::vector<std::string_view> known;
        known.reserve(config.repositories.size());
        for (const auto& [name, repository] : config.repositories) {
            known.push_back(name);
        }
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("query parameter repository: \"{}\" is not a repository of this "
                                "master; it has {}",
                                log::field(filter.repository, 64),
                                known.empty() ? std::string("none")
                                              : fmt::format("{}", fmt::join(known, ", "))));
    }
    if (const auto found = request.query.find("result"); found != request.query.end()) {
        filter.result = found->second;
    }
    if (!filter.result.empty() &&
        std::ranges::find(result_names, filter.result) == result_names.end()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("query parameter result: expected one of {}, not \"{}\"",
                                fmt::join(result_names, ", "),
                                log::field(filter.result, 32)));
    }
    const auto branches = query_number(request, "branches", 50, 1, 500);
    if (!branches) {
        return std::unexpected(branches.error());
    }
    filter.max_branches = static_cast<std::size_t>(*branches);
    return filter;
}

web::Data grid_rows(const std::vector<web::GridRow>& rows, WallTime now) {
    // Built with put() and append(), which move: kainjow's set() and lists copy, and 10,000
    // cells copied at each level cost more than rendering them (bench/ui).
    auto out = web::make_list();
    for (const auto& row : rows) {
        auto cells = web::make_list();
        for (const auto& c : row.cells) {
            // One object per cell (an empty one where there is no build); `built` opens it.
            web::Data cell;
            if (c) {
                web::put(cell, "built", true);
                web::put(cell, "cell_href", build_href(c->build));
                web::put(cell, "cell_result", c->result);
                web::put(cell, "cell_age", web::age_text(c->finished.value_or(c->started), now));
            }
            web::append(cells, std::move(cell));
        }
        web::Data r;
        web::put(r, "row_name", row.builder);
        web::put(r, "row_href", builder_href(row.builder));
        web::put(r, "cells", std::move(cells));
        web::append(out, std::move(r));
    }
    return out;
}

web::List options(const std::vector<std::string>& names, const std::string& selected) {
    web::List out;
    for (const auto& name : names) {
        web::Data option;
        option.set("name", name);
        option.set("selected", name == selected);
        out.emplace_back(std::move(option));
    }
    return out;
}

} // namespace

Result<web::GridInput> grid_input(const config::Config& config, store::Store& store) {
    auto builds = store.latest_builds();
    if (!builds) {
        return fail(builds.error());
    }
    web::GridInput input;
    for (const auto& [name, builder] : config.builders) {
        input.builders.emplace(name, builder.repository);
    }
    input.failing.insert(config.failing_builders.begin(), config.failing_builders.end());
    for (const auto& [name, repository] : config.repositories) {
        input.default_branches.emplace(name, repository.default_branch);
    }
    input.builds = std::move(*builds);
    return input;
}

web::Data home_data(const config::Config& config,
                    const web::Grid& grid,
                    const web::GridFilter& filter,
                    WallTime now) {
    web::Data data;
    std::vector<std::string> repositories;
    repositories.reserve(config.repositories.size());
    for (const auto& [name, repository] : config.repositories) {
        repositories.push_back(name);
    }
    data.set("repositories", web::Data(options(repositories, filter.repository)));
    data.set("results",
             web::Data(options({result_names.begin(), result_names.end()}, filter.result)));
    web::List columns;
    for (const auto& branch : grid.branches) {
        columns.emplace_back(branch);
    }
    if (!grid.rows.empty()) {
        web::Data g;
        g.set("columns", web::Data(columns));
        web::put(g, "rows", grid_rows(grid.rows, now));
        if (grid.hidden_branches > 0) {
            g.set("hidden",
                  grid.hidden_branches == 1 ? std::string("1 less active branch is not shown.")
                                            : fmt::format("{} less active branches are not shown.",
                                                          grid.hidden_branches));
        }
        web::put(data, "grid", std::move(g));
    }
    if (!grid.failing.empty()) {
        web::Data g;
        g.set("columns", web::Data(columns));
        web::put(g, "failing_rows", grid_rows(grid.failing, now));
        web::put(data, "failing_grid", std::move(g));
    }
    std::string api = "/api/v1/grid";
    std::string separator = "?";
    for (const auto& [key, value] :
         {std::pair{"repository", filter.repository}, std::pair{"result", filter.result}}) {
        if (!value.empty()) {
            api += separator + key + "=" + http::uri_encode(value);
            separator = "&";
        }
    }
    data.set("api", api);
    web::List builders;
    for (const auto& [name, builder] : config.builders) {
        builders.emplace_back(name);
    }
    data.set("force_builders", web::Data(builders));
    data.set("expected_failures", !config.failing_builders.empty());
    return data;
}

namespace {

// The ETag of a page: a hash of its body, so that a live page's poll of an unchanged page is a
// 304 (app.js sends If-None-Match).
void conditional(const http::ServerRequest& request, http::ServerResponse& response) {
    if (response.status != 200) {
        return;
    }
    const auto etag = fmt::format("\"{:016x}\"", std::hash<std::string>{}(response.body));
    response.headers.emplace_back("ETag", etag);
    if (request.header("if-none-match") == etag) {
        response.status = 304;
        response.body.clear();
    }
}

// The request's If-None-Match, kept for an answer made on another thread (the request is not).
http::ServerRequest conditions_of(const http::ServerRequest& request) {
    http::ServerRequest out;
    if (const auto value = request.header("if-none-match"); !value.empty()) {
        out.headers.emplace_back("if-none-match", std::string(value));
    }
    return out;
}

void home(Services& s, const http::ServerRequest& request, http::Reply reply) {
    auto page = page_frame(s, request, "Home", web::Nav::Home);
    page.live = true;
    auto filter = grid_filter(s.config, request);
    if (!filter) {
        reply.send(web::error_page(page, 400, filter.error().message));
        return;
    }
    s.reads.post(
        [&s, page, filter = *std::move(filter), conditions = conditions_of(request), reply](
            store::Store& store) mutable {
            auto grid = s.grid.grid(store, filter); // kept between builds (grid_cache.h)
            if (!grid) {
                reply.send(web::error_page(page, 500, grid.error().message));
                return;
            }
            auto response = web::page_response(
                page, "home.mustache", home_data(s.config, **grid, filter, s.clock.now()));
            conditional(conditions, response);
            reply.send(std::move(response));
        });
}

void write_grid_rows(Json& json, const web::Grid& grid, const std::vector<web::GridRow>& rows) {
    for (const auto& row : rows) {
        json.begin()
            .field("name", row.builder)
            .field("repository", row.repository)
            .field("failing", row.failing)
            .begin_array("cells");
        for (std::size_t i = 0; i < row.cells.size(); ++i) {
            const auto& cell = row.cells[i];
            if (!cell) {
                continue;
            }
            json.begin()
                .field("branch", grid.branches[i])
                .field("build", cell->build)
                .field("result", cell->result)
                .time("started", cell->started)
                .time("finished", cell->finished)
                .end();
        }
        json.end_array().end();
    }
}

} // namespace

std::string grid_json(const web::Grid& grid) {
    Json json;
    json.begin().strings("branches", grid.branches);
    json.field("hidden_branches", static_cast<std::int64_t>(grid.hidden_branches));
    json.begin_array("builders");
    write_grid_rows(json, grid, grid.rows);
    write_grid_rows(json, grid, grid.failing);
    json.end_array().end();
    return json.text();
}

namespace {

void grid_api(Services& s, const http::ServerRequest& request, http::Reply reply) {
    auto filter = grid_filter(s.config, request);
    if (!filter) {
        reply.send(error_response(400, filter.error().message));
        return;
    }
    s.reads.post([&s, filter = *std::move(filter), reply](store::Store& store) mutable {
        auto grid = s.grid.grid(store, filter);
        if (!grid) {
            reply.send(error_response(500, grid.error().message));
            return;
        }
        reply.send(json_response(200, grid_json(**grid)));
    });
}

// The builder page's data, read on a reader thread.
Result<web::Data> builder_data(const Services& s,
                               store::Store& store,
                               const std::string& name,
                               const config::Builder& builder,
                               WallTime now) {
    store::BuildQuery query;
    query.builder = name;
    query.limit = 30;
    auto builds = store.builds(query);
    if (!builds) {
        return fail(builds.error());
    }
    auto pending = store.requests(store::RequestState::Pending);
    if (!pending) {
        return fail(pending.error());
    }
    web::Data data;
    data.set("name", name);
    if (!builder.repository.empty()) {
        data.set("repository", builder.repository);
    }
    const bool failing =
        std::ranges::find(s.config.failing_builders, name) != s.config.failing_builders.end();
    data.set("failing", failing);
    data.set("expected_failures", failing);
    data.set("api_builds", "/api/v1/builds?builder=" + http::uri_encode(name));
    data.set("api_requests", std::string("/api/v1/buildrequests?state=pending"));
    data.set("badge", "/badge/" + http::uri_encode(name) + ".svg");
    data.set("force_action", builder_href(name) + "/force");
    web::List requests;
    for (const auto& request : *pending) {
        if (request.request.builder != name) {
            continue;
        }
        web::Data r;
        r.set("request_id", std::to_string(request.id));
        r.set("request_branch", request.request.branch);
        r.set("request_revision", request.request.revision);
        r.set("request_reason", request.request.reason);
        r.set("request_submitted", time_text(request.submitted));
        r.set("request_age", web::age_text(request.submitted, now));
        requests.emplace_back(std::move(r));
    }
    if (!requests.empty()) {
        web::Data p;
        p.set("requests", web::Data(requests));
        data.set("pending", p);
    }
    web::List rows;
    std::map<std::int64_t, std::optional<store::BuildRequest>> by_id;
    for (const auto& build : *builds) {
        auto [found, fresh] = by_id.try_emplace(build.request_id);
        if (fresh) {
            if (auto read = store.request(build.request_id); read && *read) {
                found->second = std::move(*read);
            }
        }
        web::Data b;
        b.set("build_id", std::to_string(build.id));
        b.set("build_href", build_href(build.id));
        b.set("build_branch", found->second ? found->second->request.branch : std::string());
        b.set("build_reason", found->second ? found->second->request.reason : std::string());
        b.set("build_result", web::result_name(build));
        b.set("build_started", time_text(build.started));
        b.set("build_age", web::age_text(build.started, now));
        b.set("build_duration",
              web::duration_text(std::chrono::duration_cast<std::chrono::seconds>(
                  build.finished.value_or(now) - build.started)));
        b.set("build_worker", build.worker);
        rows.emplace_back(std::move(b));
    }
    data.set("has_builds", !rows.empty());
    data.set("builds", web::Data(rows));
    return data;
}

void builder_page(Services& s,
                  const http::ServerRequest& request,
                  std::string name,
                  http::Reply reply) {
    auto page = page_frame(s, request, "Builder " + name, web::Nav::Home);
    page.live = true;
    const auto found = s.config.builders.find(name);
    if (found == s.config.builders.end()) {
        reply.send(web::error_page(page, 404, fmt::format("No builder \"{}\".", name)));
        return;
    }
    s.reads.post(
        [&s, page, name, &builder = found->second, conditions = conditions_of(request), reply](
            store::Store& store) mutable {
            auto data = builder_data(s, store, name, builder, s.clock.now());
            if (!data) {
                reply.send(web::error_page(page, 500, data.error().message));
                return;
            }
            auto response = web::page_response(page, "builder.mustache", std::move(*data));
            conditional(conditions, response);
            reply.send(std::move(response));
        });
}

} // namespace

int class_max_builds(const config::Config& config, const std::string& worker_class) {
    const auto found = config.slaves.find(worker_class);
    if (found == config.slaves.end()) {
        return 0;
    }
    return std::visit([](const auto& workers) { return workers.max_builds; }, found->second);
}

namespace {

web::Data worker_row(const Services& s, const ListedWorker& worker, WallTime now) {
    const auto& name = worker.name;
    const auto& live = worker.live;
    web::Data w;
    w.set("worker_name", name);
    w.set("worker_class", worker.worker_class);
    w.set("connected", live.has_value());
    w.set("worker_state", worker.state);
    if (worker.last_seen) {
        w.set("seen", web::age_text(*worker.last_seen, now));
        w.set("seen_at", time_text(*worker.last_seen));
    }
    web::List running;
    if (live) {
        for (const auto id : live->builds) {
            web::Data b;
            b.set("build_id", std::to_string(id));
            b.set("build_href", build_href(id));
            running.emplace_back(std::move(b));
        }
    }
    w.set("running", web::Data(running));
    w.set("max_builds", std::to_string(class_max_builds(s.config, worker.worker_class)));
    if (const auto& instance = worker.instance) {
        web::Data i;
        i.set("instance_id", instance->instance_id);
        i.set("instance_type", instance->instance_type);
        i.set("instance_market", instance->market);
        i.set("instance_state", instance->state);
        i.set("instance_age", web::age_text(instance->launched, now));
        w.set("instance", i);
    }
    // What can be done now: pause or resume (whichever undoes the state), and shut down, for a
    // worker that is not shutting down already.
    web::List actions;
    const bool paused = live && live->paused;
    const bool leaving = live && live->shutting_down;
    for (const auto& [action, label, offered] : {std::tuple{"pause", "Pause", !paused && !leaving},
                                                 std::tuple{"resume", "Resume", paused && !leaving},
                                                 std::tuple{"shutdown", "Shut down", !leaving}}) {
        if (!offered) {
            continue;
        }
        web::Data a;
        a.set("action_href", fmt::format("/workers/{}/{}", http::uri_encode(name, true), action));
        a.set("action_label", std::string(label));
        actions.emplace_back(std::move(a));
    }
    w.set("actions", web::Data(actions));
    return w;
}

void workers_page(Services& s, const http::ServerRequest& request, http::Reply reply) {
    auto page = page_frame(s, request, "Workers", web::Nav::Workers);
    page.live = true;
    s.reads.post(
        [&s, page, conditions = conditions_of(request), reply](store::Store& store) mutable {
            auto stored = store.workers();
            if (!stored) {
                reply.send(web::error_page(page, 500, stored.error().message));
                return;
            }
            const auto now = s.clock.now();
            web::List rows;
            for (const auto& worker : listed_workers(s, *stored)) {
                rows.emplace_back(worker_row(s, worker, now));
            }
            web::Data data;
            data.set("has_workers", !rows.empty());
            data.set("workers", web::Data(rows));
            auto response = web::page_response(page, "workers.mustache", std::move(data));
            conditional(conditions, response);
            reply.send(std::move(response));
        });
}

// GET /badge/BUILDER.svg?branch=B: the newest result of BUILDER on B (default: its repository's
// default branch). An unknown builder is a 404 whose body is still an "unknown" badge (a README
// shows it, a link checker sees the error); a known builder without a build there is a 200
// "unknown".
void badge(Services& s,
           const http::ServerRequest& request,
           std::string_view file,
           http::Reply reply) {
    const auto send = [conditions = conditions_of(request)](http::Reply& out,
                                                            int status,
                                                            std::string_view label,
                                                            std::string_view result) {
        http::ServerResponse response;
        response.status = status;
        response.content_type = "image/svg+xml";
        response.body = web::badge_svg(label, result);
        response.headers.emplace_back("Cache-Control", "no-cache, max-age=0");
        response.headers.emplace_back("X-Content-Type-Options", "nosniff");
        if (status == 200) {
            conditional(conditions, response);
        }
        out.send(std::move(response));
    };
    if (!file.ends_with(".svg")) {
        send(reply, 404, "badge", "unknown");
        return;
    }
    const std::string name(file.substr(0, file.size() - 4));
    const auto found = s.config.builders.find(name);
    if (found == s.config.builders.end()) {
        send(reply, 404, name, "unknown");
        return;
    }
    std::string branch = "master";
    if (const auto repository = s.config.repositories.find(found->second.repository);
        repository != s.config.repositories.end()) {
        branch = repository->second.default_branch;
    }
    if (const auto asked = request.query.find("branch"); asked != request.query.end()) {
        branch = asked->second;
    }
    s.reads.post([name, branch, send, reply](store::Store& store) mutable {
        // The builder's newest builds, newest first, until one of the branch: a badge costs a
        // few rows, not a scan of every build.
        store::BuildQuery query;
        query.builder = name;
        query.limit = 200;
        auto builds = store.builds(query);
        if (!builds) {
            reply.send(error_response(500, builds.error().message));
            return;
        }
        for (const auto& build : *builds) {
            auto asked = store.request(build.request_id);
            if (asked && *asked && (*asked)->request.branch == branch) {
                send(reply, 200, name, web::result_name(build));
                return;
            }
        }
        send(reply, 200, name, "unknown");
    });
}

} // namespace

void add_ui_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/grid",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            grid_api(services, request, std::move(reply));
        },
        false,
        "/api/v1/grid");
    router.add(
        "GET",
        "/builders/{name}",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            builder_page(services, request, std::string(params.get("name")), std::move(reply));
        });
    router.add("GET",
               "/workers",
               [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
                   workers_page(services, request, std::move(reply));
               });
    router.add(
        "GET",
        "/badge/{file}",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            badge(services, request, params.get("file"), std::move(reply));
        });
    // Public: the login page needs its style sheet even with auth.view: login.
    router.add("GET",
               "/static/{name}",
               [](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
                   reply.send(static_asset(request, params.get("name")));
               },
               Guard::Public,
               {});
    router.add("GET",
               "/",
               [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
                   home(services, request, std::move(reply));
               });
}

} // namespace ci::master
