// /api/v1/master: the master's own state (drained or not, running builds, queued requests), and
// drain / undrain: no new build starts while drained (what `ci-deploy update` does before it
// waits for the running builds and stops the master).

#include <fmt/format.h>

#include <ci/core/log.h>

#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

// {"drained": B, "running_builds": N, "pending_requests": M}; runs on a read thread.
void state(Services& s, store::Store& store, int status, http::Reply& reply) {
    auto pending = store.requests(store::RequestState::Pending);
    if (!pending) {
        reply.send(error_response(500, pending.error().message));
        return;
    }
    Json json;
    json.begin()
        .field("drained", s.dispatcher.drained())
        .field("running_builds", static_cast<std::int64_t>(s.running.builds().size()))
        .field("pending_requests", static_cast<std::int64_t>(pending->size()))
        .end();
    reply.send(json_response(status, json.text()));
}

// Drains or undrains, off the HTTP thread: set_drained waits for a dispatcher pass under way.
void set_drained(Services& s, bool drained, std::string who, http::Reply reply) {
    s.reads.post([&s, drained, reply, who = std::move(who)](store::Store& store) mutable {
        const bool was = s.dispatcher.drained();
        s.dispatcher.set_drained(drained);
        if (was != drained) {
            log::info("{} by {} (API): {}; {} running",
                      drained ? "drained" : "undrained",
                      log::field(who, 64),
                      drained ? "no new build starts" : "builds start again",
                      s.running.builds().size());
        }
        state(s, store, 200, reply);
    });
}

} // namespace

void add_master_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/master",
        [&services](http::ServerRequest&, const PathParams&, http::Reply reply) {
            services.reads.post([&services, reply](store::Store& store) mutable {
                state(services, store, 200, reply);
            });
        },
        false,
        "/api/v1/master");
    for (const bool drained : {true, false}) {
        router.add(
            "POST",
            drained ? "/api/v1/master/drain" : "/api/v1/master/undrain",
            [&services,
             drained](http::ServerRequest& request, const PathParams&, http::Reply reply) {
                set_drained(services, drained, api_user(services, request), std::move(reply));
            },
            true,
            drained ? "/api/v1/master/drain (POST)" : "/api/v1/master/undrain (POST)");
    }
}

} // namespace ci::master
