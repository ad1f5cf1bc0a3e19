// /api/v1/changes: the changes webhooks and pollers stored, newest first.

#include <limits>

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
            const auto limit = query_number(request, "limit", 50, 1, 1000);
            const auto before =
                query_number(request, "before", 0, 0, std::numeric_limits<std::int64_t>::max());
            for (const auto* checked : {&limit, &before}) {
                if (!*checked) {
                    reply.send(error_response(400, checked->error().message));
                    return;
                }
            }
            services.reads.post([reply, limit = static_cast<int>(*limit), before = *before](
                                    store::Store& store) mutable {
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
