// /api/v1/buildrequests: the queue (by state), one request, and cancelling a pending one.

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/http/request.h>

#include "master/forms.h"
#include "master/json.h"
#include "master/services.h"

namespace ci::master {

std::string_view request_state_text(store::RequestState state) {
    switch (state) {
    case store::RequestState::Pending:
        return "pending";
    case store::RequestState::Claimed:
        return "claimed";
    case store::RequestState::Completed:
        return "completed";
    case store::RequestState::Cancelled:
        return "cancelled";
    case store::RequestState::Collapsed:
        return "collapsed";
    }
    return "unknown";
}

namespace {

std::optional<store::RequestState> state_from(std::string_view text) {
    for (const auto state : {store::RequestState::Pending,
                             store::RequestState::Claimed,
                             store::RequestState::Completed,
                             store::RequestState::Cancelled,
                             store::RequestState::Collapsed}) {
        if (request_state_text(state) == text) {
            return state;
        }
    }
    return std::nullopt;
}

void write_request(Json& json, const store::BuildRequest& request) {
    json.begin()
        .field("id", request.id)
        .field("builder", request.request.builder)
        .field("scheduler", request.request.scheduler)
        .field("repository", request.request.repository)
        .field("branch", request.request.branch)
        .field("revision", request.request.revision)
        .field("reason", request.request.reason)
        .field("state", request_state_text(request.state))
        .time("submitted", request.submitted)
        .ids("changes", request.request.change_ids)
        .strings("properties", request.request.properties);
    if (request.collapsed_into) {
        json.field("collapsed_into", *request.collapsed_into);
    }
    if (request.request.triggered_by_request != 0) {
        json.field("triggered_by_request", request.request.triggered_by_request)
            .field("triggered_by_step", request.request.triggered_by_step);
    }
    if (const auto& pinned = request.request.pinned_merge) {
        json.field("pinned_target", pinned->target)
            .field("pinned_target_revision", pinned->target_revision);
    }
    json.end();
}

void list(Services& s, const http::ServerRequest& request, http::Reply reply) {
    const auto found = request.query.find("state");
    const auto state = state_from(found == request.query.end() ? "pending" : found->second);
    if (!state) {
        reply.send(error_response(
            400, "state is one of pending, claimed, completed, cancelled, collapsed"));
        return;
    }
    const auto limit = query_number(request, "limit", 1000, 1, 100000);
    if (!limit) {
        reply.send(error_response(400, limit.error().message));
        return;
    }
    s.reads.post([reply, state = *state, limit = static_cast<std::size_t>(*limit)](
                     store::Store& store) mutable {
        auto requests = store.requests(state);
        if (!requests) {
            reply.send(error_response(500, requests.error().message));
            return;
        }
        Json json;
        json.begin().begin_array("buildrequests");
        // The newest when there are more than the limit.
        const auto first = requests->size() > limit ? requests->size() - limit : 0;
        for (std::size_t i = first; i < requests->size(); ++i) {
            write_request(json, (*requests)[i]);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
    });
}

void one(Services& s, std::int64_t id, http::Reply reply) {
    s.reads.post([reply, id](store::Store& store) mutable {
        auto found = store.request(id);
        if (!found) {
            reply.send(error_response(500, found.error().message));
        } else if (!*found) {
            reply.send(error_response(404, fmt::format("no build request {}", id)));
        } else {
            Json json;
            write_request(json, **found);
            reply.send(json_response(200, json.text()));
        }
    });
}

// The core of a cancel (the JSON API's and the web UI's): `done` gets 200 and the request's
// builder when the pending request `id` is cancelled (by `who`), 404 when there is no such
// request, 409 when it is not pending.
void cancel_request(
    Services& s,
    std::int64_t id,
    std::string who,
    std::function<void(int status, const std::string& error, const std::string& builder)> done) {
    s.reads.post([&s, done = std::move(done), id, who = std::move(who)](store::Store& store) {
        // The cancel's reports (a commit status left pending ends, a push's summary is sent)
        // are stored with it.
        std::optional<report::BuildReport> report;
        std::string builder;
        auto request = store.request(id);
        if (!request) {
            done(500, request.error().message, {});
            return;
        }
        if (!*request) {
            done(404, fmt::format("no build request {}", id), {});
            return;
        }
        report = s.reports.cancelled(**request);
        builder = (*request)->request.builder;
        auto cancelled = store.cancel(
            id, report ? s.reports.outbox(*report) : std::vector<store::OutboxMessage>{});
        if (!cancelled) {
            done(500, cancelled.error().message, {});
            return;
        }
        if (!*cancelled) {
            done(409, fmt::format("build request {} is not pending", id), {});
            return;
        }
        log::info("build request {} cancelled by {}", id, log::field(who, 64));
        if (report) {
            s.reports.deliver(*report);
        }
        if (!builder.empty()) {
            s.coordinator.request_cancelled(id, builder); // trigger steps
        }
        done(200, {}, builder);
    });
}

void cancel(Services& s, const http::ServerRequest& request, std::int64_t id, http::Reply reply) {
    cancel_request(s,
                   id,
                   api_user(s, request),
                   [reply, id](int status, const std::string& error, const std::string&) mutable {
                       if (!error.empty()) {
                           reply.send(error_response(status, error));
                           return;
                       }
                       Json json;
                       json.begin().field("cancelled", id).end();
                       reply.send(json_response(200, json.text()));
                   });
}

// POST /requests/{id}/cancel: the cancel form of a pending request; 303 back to the page (or
// to the request's builder).
void cancel_form(Services& s,
                 const http::ServerRequest& request,
                 std::int64_t id,
                 http::Reply reply) {
    with_form(s, request, reply, {}, [&](const Form&, const Viewer& viewer) {
        cancel_request(
            s,
            id,
            viewer.user,
            [reply, referer = came_from(request, {}), frame = page_frame(s, request, "Cancel")](
                int status, const std::string& error, const std::string& builder) mutable {
                if (!error.empty()) {
                    reply.send(form_error(frame, status, error));
                    return;
                }
                reply.send(see_other(!referer.empty() ? referer
                                                      : "/builders/" + http::uri_encode(builder)));
            });
    });
}

// Runs `then` with the {id} capture, or answers 404 when it is not an integer.
template <class Then> void with_id(const PathParams& params, http::Reply& reply, Then then) {
    const auto id = params.integer("id");
    if (!id) {
        reply.send(error_response(404, "build request ids are integers"));
        return;
    }
    then(*id);
}

} // namespace

void add_request_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/api/v1/buildrequests",
        [&services](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            list(services, request, std::move(reply));
        },
        false,
        "/api/v1/buildrequests?state=pending (or claimed, completed, cancelled, collapsed)");
    router.add(
        "GET",
        "/api/v1/buildrequests/{id}",
        [&services](http::ServerRequest&, const PathParams& params, http::Reply reply) {
            with_id(params, reply, [&](std::int64_t id) { one(services, id, reply); });
        },
        false,
        "/api/v1/buildrequests/{id}");
    router.add(
        "POST",
        "/api/v1/buildrequests/{id}/cancel",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            with_id(params, reply, [&](std::int64_t id) { cancel(services, request, id, reply); });
        },
        true,
        "/api/v1/buildrequests/{id}/cancel (POST)");
    router.add(
        "POST",
        "/requests/{id}/cancel",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            with_id(
                params, reply, [&](std::int64_t id) { cancel_form(services, request, id, reply); });
        },
        Guard::Form,
        "/requests/{id}/cancel (POST, a web UI form)");
}

} // namespace ci::master
