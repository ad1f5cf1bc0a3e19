// The web UI's pages (server-rendered HTML; lib/src/web renders them) and its static assets.
// Every datum a page shows is also in the JSON API (docs/api.md). Store reads go through the
// read pool, never on the HTTP thread.

#include <fmt/format.h>

#include "master/services.h"
#include "web/assets.h"
#include "web/page.h"

namespace ci::master {

namespace {

// The layout's frame for `request`: its viewer (from the session), title and navigation entry.
web::Frame
frame(const Services& s, const http::ServerRequest& request, std::string title, web::Nav nav) {
    const auto viewer = s.sessions.viewer(request);
    web::Frame out;
    out.title = std::move(title);
    out.nav = nav;
    out.user = viewer.user;
    out.csrf_token = viewer.csrf_token;
    out.path = request.target;
    return out;
}

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

void home(Services& s, const http::ServerRequest& request, http::Reply reply) {
    web::List builders;
    for (const auto& [name, builder] : s.config.builders) {
        web::Data row;
        row.set("name", name);
        builders.emplace_back(std::move(row));
    }
    web::Data data;
    data.set("builders", web::Data(builders));
    reply.send(
        web::page_response(frame(s, request, "Home", web::Nav::Home), "home.mustache", data));
}

} // namespace

void add_ui_routes(Router& router, Services& services) {
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
