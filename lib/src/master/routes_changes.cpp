// /api/v1/changes: the changes webhooks and pollers stored, newest first.

#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

void write_change(Json& json, const sched::Change& change) {
    json.begin()
        .field("id", change.id)
        .field("repository", change.repository)
        .field("branch", change.branch)
        .field("is_tag", change.is_tag)
        .field("revision", change.revision)
        .field("author", change.author)
        .field("comments", change.comments)
        .time("when", change.when);
    if (change.files) {
        json.strings("files", *change.files);
    }
    json.end();
}

} // namespace

void add_change_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/changes",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            const auto limit = query_int(request, "limit", 50, 1000);
            const auto before = query_integer(request, "before").value_or(0);
            services.reads.post([reply, limit, before](store::Store& store) mutable {
                auto changes = store.recent_changes(limit, before);
                if (!changes) {
                    reply.send(error_response(500, changes.error().message));
                    return;
                }
                Json json;
                json.begin().begin_array("changes");
                for (const auto& change : *changes) {
                    write_change(json, change);
                }
                json.end_array().end();
                reply.send(json_response(200, json.text()));
            });
        },
        false,
        "/api/v1/changes");
}

} // namespace ci::master
