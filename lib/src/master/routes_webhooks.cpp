// POST /change_hook/github: GitHub push webhooks, verified, de-duplicated, parsed, and answered
// once their changes are on disk.

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/sched/github.h>

#include "master/json.h"
#include "master/services.h"

namespace ci::master {

namespace {

// Collects the receipts of one push's events; answers once the last is on disk.
struct PushReceipts {
    std::mutex mutex;
    std::size_t left = 0;
    std::vector<std::int64_t> changes;
    std::optional<Error> error;
};

// Queues a verified push's events (the delivery id stored with the last one); answers when
// they are on disk.
void ingest_push(Services& s,
                 std::vector<sched::Event> events,
                 const std::string& delivery,
                 http::Reply reply) {
    auto receipts = std::make_shared<PushReceipts>();
    receipts->left = events.size();
    // Written on this server thread once the round of requests that arrived with this one has
    // been read: one transaction (one fsync) for all of them, and no hand-off to the ingest
    // thread and back.
    bool flush_owed = false;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const bool last = i + 1 == events.size();
        flush_owed |= s.ingestor.enqueue(
            std::move(events[i]),
            last ? delivery : std::string(),
            [&s, receipts, reply, delivery](Result<store::Receipt> receipt) mutable {
                const std::lock_guard lock(receipts->mutex);
                if (receipt) {
                    receipts->changes.insert(receipts->changes.end(),
                                             receipt->change_ids.begin(),
                                             receipt->change_ids.end());
                } else if (!receipts->error) {
                    receipts->error = receipt.error();
                }
                if (--receipts->left > 0) {
                    return;
                }
                if (receipts->error) {
                    log::error("webhook: {}", receipts->error->message);
                    if (!delivery.empty()) {
                        s.deliveries.forget(delivery);
                    }
                    reply.send(error_response(503, receipts->error->message));
                    return;
                }
                if (!delivery.empty()) {
                    s.deliveries.stored(delivery);
                }
                ++s.metrics.webhooks_accepted;
                Json json;
                json.begin().ids("changes", receipts->changes).end();
                reply.send(json_response(200, json.text()));
            });
    }
    if (flush_owed) {
        reply.defer([&s] { s.ingestor.flush(); });
    }
}

// Answers a push that builds nothing: 200 with why.
void ignored(Services& s, const std::string& delivery, std::string_view why, http::Reply& reply) {
    if (!delivery.empty()) {
        s.deliveries.forget(delivery);
    }
    reply.send(one_field(200, "ignored", why));
}

void github_push(Services& s, http::ServerRequest& request, http::Reply reply) {
    std::string delivery(request.header("x-github-delivery"));
    if (!delivery.empty()) {
        switch (s.deliveries.begin(delivery)) {
        case Deliveries::Seen::Stored: {
            ++s.metrics.webhooks_duplicate;
            Json json;
            json.begin().field("duplicate", true).field("delivery", delivery).end();
            reply.send(json_response(200, json.text()));
            return;
        }
        case Deliveries::Seen::InFlight:
            reply.send(error_response(
                409,
                fmt::format("delivery {} is being stored now; send it again later", delivery)));
            return;
        case Deliveries::Seen::New:
            break;
        }
    }
    auto push = sched::parse_github_webhook(request.body, s.config);
    if (!push) {
        if (!delivery.empty()) {
            s.deliveries.forget(delivery);
        }
        reply.send(error_response(400, push.error().message));
        return;
    }
    if (push->repository.empty()) {
        ignored(s,
                delivery,
                fmt::format("no repository of the config has the URL {}",
                            push->urls.empty() ? std::string("(none)") : push->urls.front()),
                reply);
        return;
    }
    if (push->events.empty()) {
        ignored(s, delivery, "the push names no branch or tag", reply);
        return;
    }
    ingest_push(s, std::move(push->events), delivery, std::move(reply));
}

void github_hook(Services& s,
                 FailureLimiter& failures,
                 http::ServerRequest& request,
                 http::Reply reply) {
    const auto& secret = s.config.github.webhook_secret;
    if (!secret.empty()) {
        if (auto status = sched::verify_github_signature(
                secret, request.body, request.header("x-hub-signature-256"));
            !status) {
            ++s.metrics.webhooks_rejected;
            // Logged by the limiter, once per interval with a count: a flood of wrong
            // signatures is one line per 10 s, not one per try.
            failures.failed(request.remote_address);
            reply.send(error_response(403, status.error().message));
            return;
        }
        failures.succeeded(request.remote_address);
    }
    const std::string event(request.header("x-github-event"));
    if (event.empty()) {
        reply.send(error_response(400, "no X-GitHub-Event header"));
        return;
    }
    if (event == "ping") {
        Json json;
        json.begin().field("pong", true).end();
        reply.send(json_response(200, json.text()));
        return;
    }
    if (event != "push") {
        reply.send(one_field(200, "ignored", fmt::format("\"{}\" events build nothing", event)));
        return;
    }
    github_push(s, request, std::move(reply));
}

} // namespace

void add_webhook_routes(Router& router, Services& services) {
    router.add(
        "POST",
        "/change_hook/github",
        [&services, &failures = router.signature_failures()](
            http::ServerRequest& request, const PathParams&, http::Reply reply) {
            github_hook(services, failures, request, std::move(reply));
        },
        Guard::Signed,
        "/change_hook/github (POST: GitHub push webhooks, X-Hub-Signature-256)",
        webhook_max_body);
}

} // namespace ci::master
