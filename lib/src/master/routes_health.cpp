// /healthz, /metrics, and the API's index (GET / and GET /api/v1).

#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

void healthz(Services& s, http::Reply reply) {
    if (!s.accepting) {
        reply.send(one_field(503, "status", "stopping"));
        return;
    }
    if (auto error = s.writes.degraded()) {
        // Webhooks may still be refused (503) and build states lag behind: say why.
        Json json;
        json.begin()
            .field("status", "degraded")
            .field("error", *error)
            .field("queued_writes", static_cast<std::int64_t>(s.writes.queued()))
            .end();
        reply.send(json_response(503, json.text()));
        return;
    }
    reply.send(one_field(200, "status", "ok"));
}

void metrics(Services& s, http::Reply reply) {
    s.reads.post([&s, reply](store::Store& store) mutable {
        Gauges gauges;
        for (const auto& [name, builder] : s.config.builders) {
            gauges.pending[name] = 0;
            gauges.running[name] = 0;
        }
        if (auto pending = store.requests(store::RequestState::Pending)) {
            for (const auto& request : *pending) {
                ++gauges.pending[request.request.builder];
            }
        }
        for (const auto& build : s.running.builds()) {
            ++gauges.running[build.builder];
        }
        gauges.workers_connected = s.workers.remote_count();
        gauges.store_degraded = s.writes.degraded().has_value();
        if (s.ec2 != nullptr) {
            for (const auto& [name, worker_class] : s.config.slaves) {
                if (!std::holds_alternative<config::Ec2Workers>(worker_class)) {
                    continue;
                }
                for (const char* market : {"on-demand", "spot"}) {
                    gauges.ec2_instance_seconds[{name, market}] = 0;
                    for (const char* state : {"launching",
                                              "pending",
                                              "running",
                                              "stopping",
                                              "stopped",
                                              "terminating"}) {
                        gauges.ec2_instances[{name, market, state}] = 0;
                    }
                }
            }
            for (const auto& instance : s.ec2->instances()) {
                ++gauges.ec2_instances[{instance.worker_class, instance.market, instance.state}];
            }
            for (const auto& [key, seconds] : s.ec2->instance_seconds()) {
                gauges.ec2_instance_seconds[key] = seconds;
            }
        }
        http::ServerResponse response;
        response.content_type = "text/plain; version=0.0.4";
        response.body = prometheus_text(s.metrics.snapshot(), gauges);
        reply.send(std::move(response));
    });
}

} // namespace

void add_health_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/healthz",
        [&services](http::ServerRequest&, const PathParams&, http::Reply reply) {
            healthz(services, std::move(reply));
        },
        Guard::Public, // a load balancer's probe needs no login, even with auth.view: login
        "/healthz");
    router.add(
        "GET",
        "/metrics",
        [&services](http::ServerRequest&, const PathParams&, http::Reply reply) {
            metrics(services, std::move(reply));
        },
        false,
        "/metrics");
    // GET / is the web UI's home page (routes_ui.cpp).
    router.add(
        "GET", "/api/v1", [&router](http::ServerRequest&, const PathParams&, http::Reply reply) {
            Json json;
            json.begin().strings("endpoints", router.endpoints()).end();
            reply.send(json_response(200, json.text()));
        });
}

} // namespace ci::master
