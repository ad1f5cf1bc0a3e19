// The master's HTTP service: GitHub webhooks, the REST API under /api/v1, build logs (plain
// text that curl can follow, and Server-Sent Events), /healthz and /metrics.

#include <charconv>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/sched/github.h>

#include "master/impl.h"

namespace ci::master::detail {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// A JSON body under construction.
class Json {
public:
    Json() : writer_(buffer_) {}
    Writer& w() { return writer_; }
    Json& key(std::string_view k) {
        writer_.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
        return *this;
    }
    Json& str(std::string_view v) {
        writer_.String(v.data(), static_cast<rapidjson::SizeType>(v.size()));
        return *this;
    }
    Json& field(std::string_view k, std::string_view v) { return key(k).str(v); }
    Json& field(std::string_view k, const char* v) { return key(k).str(v); }
    Json& field(std::string_view k, const std::string& v) { return key(k).str(v); }
    Json& field(std::string_view k, std::int64_t v) {
        key(k);
        writer_.Int64(v);
        return *this;
    }
    Json& field(std::string_view k, int v) { return field(k, std::int64_t{v}); }
    Json& field(std::string_view k, bool v) {
        key(k);
        writer_.Bool(v);
        return *this;
    }
    Json& time(std::string_view k, std::optional<WallTime> t) {
        key(k);
        if (!t) {
            writer_.Null();
        } else {
            str(fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(*t)));
        }
        return *this;
    }
    Json& strings(std::string_view k, const std::vector<std::string>& values) {
        key(k);
        writer_.StartArray();
        for (const auto& v : values) {
            str(v);
        }
        writer_.EndArray();
        return *this;
    }
    Json& ids(std::string_view k, const std::vector<std::int64_t>& values) {
        key(k);
        writer_.StartArray();
        for (const auto v : values) {
            writer_.Int64(v);
        }
        writer_.EndArray();
        return *this;
    }
    Json& begin() {
        writer_.StartObject();
        return *this;
    }
    Json& end() {
        writer_.EndObject();
        return *this;
    }
    Json& begin_array(std::string_view k) {
        key(k);
        writer_.StartArray();
        return *this;
    }
    Json& end_array() {
        writer_.EndArray();
        return *this;
    }
    std::string text() const { return {buffer_.GetString(), buffer_.GetSize()}; }

private:
    rapidjson::StringBuffer buffer_;
    Writer writer_;
};

http::ServerResponse json_response(int status, std::string body) {
    http::ServerResponse response;
    response.status = status;
    response.body = std::move(body);
    response.body += '\n';
    return response;
}

http::ServerResponse error_response(int status, std::string_view message) {
    Json json;
    json.begin().field("error", message).end();
    return json_response(status, json.text());
}

std::optional<std::int64_t> to_integer(std::string_view text) {
    std::int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// The path's segments after a prefix: "/api/v1/builds/4/steps/1/log" -> {"builds", "4", ...}.
std::vector<std::string_view> segments(std::string_view path) {
    std::vector<std::string_view> out;
    while (!path.empty()) {
        if (path.front() == '/') {
            path.remove_prefix(1);
            continue;
        }
        const auto slash = path.find('/');
        out.push_back(path.substr(0, slash));
        path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
    }
    return out;
}

int query_int(const http::ServerRequest& request, const std::string& name, int fallback, int max) {
    const auto found = request.query.find(name);
    if (found == request.query.end()) {
        return fallback;
    }
    const auto value = to_integer(found->second);
    return value ? static_cast<int>(std::clamp<std::int64_t>(*value, 1, max)) : fallback;
}

std::string_view state_text(store::RequestState state) {
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

std::optional<store::RequestState> state_from(std::string_view text) {
    for (const auto state : {store::RequestState::Pending,
                             store::RequestState::Claimed,
                             store::RequestState::Completed,
                             store::RequestState::Cancelled,
                             store::RequestState::Collapsed}) {
        if (state_text(state) == text) {
            return state;
        }
    }
    return std::nullopt;
}

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

void write_request(Json& json, const store::BuildRequest& request) {
    json.begin()
        .field("id", request.id)
        .field("builder", request.request.builder)
        .field("scheduler", request.request.scheduler)
        .field("repository", request.request.repository)
        .field("branch", request.request.branch)
        .field("revision", request.request.revision)
        .field("reason", request.request.reason)
        .field("state", state_text(request.state))
        .time("submitted", request.submitted)
        .ids("changes", request.request.change_ids);
    if (request.collapsed_into) {
        json.field("collapsed_into", *request.collapsed_into);
    }
    json.end();
}

void write_build(Json& json,
                 const store::Build& build,
                 const store::BuildRequest* request,
                 const std::vector<store::Step>* steps) {
    json.begin()
        .field("id", build.id)
        .field("request", build.request_id)
        .field("builder", build.builder);
    if (request != nullptr) {
        json.field("repository", request->request.repository)
            .field("branch", request->request.branch)
            .field("reason", request->request.reason);
    }
    json.field("worker", build.worker)
        .time("started", build.started)
        .time("finished", build.finished)
        .field("result", build.finished ? std::string_view(build.result) : "running")
        .field("branch_tip", build.branch_tip)
        .field("target_tip", build.target_tip)
        .field("merge_commit", build.merge_commit);
    if (steps != nullptr) {
        json.begin_array("steps");
        for (const auto& step : *steps) {
            json.begin()
                .field("number", step.number)
                .field("name", step.name)
                .time("started", step.started)
                .time("finished", step.finished)
                .field("result", step.finished ? std::string_view(step.result) : "running");
            if (step.exit_code) {
                json.field("exit_code", *step.exit_code);
            }
            json.field("log", fmt::format("/api/v1/builds/{}/steps/{}/log", build.id, step.number))
                .end();
        }
        json.end_array();
    }
    json.end();
}

std::string prometheus_label(std::string_view value) {
    std::string out;
    for (const char c : value) {
        if (c == '\\' || c == '"') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    return out;
}

} // namespace

std::string sse_event(std::string_view event, std::string_view data) {
    std::string out = fmt::format("event: {}\n", event);
    // One data line per line: a client joins them with '\n' again.
    while (true) {
        const auto newline = data.find('\n');
        out += "data: ";
        out += data.substr(0, newline);
        out += '\n';
        if (newline == std::string_view::npos) {
            break;
        }
        data.remove_prefix(newline + 1);
        if (data.empty()) {
            out += "data: \n";
            break;
        }
    }
    out += '\n';
    return out;
}

void MasterState::remember_delivery(const std::string& id) {
    // Called with deliveries_mutex held, or before the server starts.
    if (deliveries.insert(id).second) {
        delivery_order.push_back(id);
        // GitHub redelivers by hand, soon after a failure: the newest 200,000 are enough.
        if (delivery_order.size() > 200000) {
            deliveries.erase(delivery_order.front());
            delivery_order.pop_front();
        }
    }
}

void MasterState::delivery_stored(const std::string& id) {
    const std::lock_guard lock(deliveries_mutex);
    deliveries_in_flight.erase(id);
    remember_delivery(id);
}

void MasterState::forget_delivery(const std::string& id) {
    const std::lock_guard lock(deliveries_mutex);
    deliveries_in_flight.erase(id);
}

namespace {

// The GitHub webhook: verified, de-duplicated, parsed, and answered once its changes are on
// disk.
void github_hook(MasterState& master, http::ServerRequest& request, http::Reply reply) {
    if (request.method != "POST") {
        reply.send(error_response(405, "POST a GitHub webhook here"));
        return;
    }
    const auto& secret = master.config.github.webhook_secret;
    if (!secret.empty()) {
        if (auto status = sched::verify_github_signature(
                secret, request.body, request.header("x-hub-signature-256"));
            !status) {
            ++master.metrics.webhooks_rejected;
            log::warn(
                "webhook from {} refused: {}", request.remote_address, status.error().message);
            reply.send(error_response(403, status.error().message));
            return;
        }
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
        Json json;
        json.begin().field("ignored", fmt::format("\"{}\" events build nothing", event)).end();
        reply.send(json_response(200, json.text()));
        return;
    }
    std::string delivery(request.header("x-github-delivery"));
    if (!delivery.empty()) {
        const std::lock_guard lock(master.deliveries_mutex);
        if (master.deliveries.contains(delivery)) {
            ++master.metrics.webhooks_duplicate;
            Json json;
            json.begin().field("duplicate", true).field("delivery", delivery).end();
            reply.send(json_response(200, json.text()));
            return;
        }
        if (!master.deliveries_in_flight.insert(delivery).second) {
            reply.send(error_response(
                409,
                fmt::format("delivery {} is being stored now; send it again later", delivery)));
            return;
        }
    }
    const auto refuse = [&](int status, std::string_view message) {
        if (!delivery.empty()) {
            master.forget_delivery(delivery);
        }
        reply.send(error_response(status, message));
    };
    auto push = sched::parse_github_webhook(request.body, master.config);
    if (!push) {
        refuse(400, push.error().message);
        return;
    }
    if (push->repository.empty()) {
        if (!delivery.empty()) {
            master.forget_delivery(delivery);
        }
        Json json;
        json.begin()
            .field("ignored",
                   fmt::format("no repository of the config has the URL {}",
                               push->urls.empty() ? std::string("(none)") : push->urls.front()))
            .end();
        reply.send(json_response(200, json.text()));
        return;
    }
    auto* events = &push->events;
    if (events->empty()) {
        if (!delivery.empty()) {
            master.forget_delivery(delivery);
        }
        Json json;
        json.begin().field("ignored", "the push names no branch or tag").end();
        reply.send(json_response(200, json.text()));
        return;
    }
    // Answered when the last event is on disk; the delivery is stored with it.
    struct Pending {
        std::mutex mutex;
        std::size_t left = 0;
        std::vector<std::int64_t> changes;
        std::optional<Error> error;
    };
    auto pending = std::make_shared<Pending>();
    pending->left = events->size();
    // Written on this server thread once the round of requests that arrived with this one has
    // been read: one transaction (one fsync) for all of them, and no hand-off to the ingest
    // thread and back.
    bool flush_owed = false;
    for (std::size_t i = 0; i < events->size(); ++i) {
        const bool last = i + 1 == events->size();
        flush_owed |= master.ingestor->enqueue(
            std::move((*events)[i]),
            last ? delivery : std::string(),
            [&master, pending, reply, delivery](Result<store::Receipt> receipt) mutable {
                const std::lock_guard lock(pending->mutex);
                if (receipt) {
                    pending->changes.insert(pending->changes.end(),
                                            receipt->change_ids.begin(),
                                            receipt->change_ids.end());
                } else if (!pending->error) {
                    pending->error = receipt.error();
                }
                if (--pending->left > 0) {
                    return;
                }
                if (pending->error) {
                    log::error("webhook: {}", pending->error->message);
                    if (!delivery.empty()) {
                        master.forget_delivery(delivery);
                    }
                    reply.send(error_response(503, pending->error->message));
                    return;
                }
                if (!delivery.empty()) {
                    master.delivery_stored(delivery);
                }
                ++master.metrics.webhooks_accepted;
                Json json;
                json.begin().ids("changes", pending->changes).end();
                reply.send(json_response(200, json.text()));
            });
    }
    if (flush_owed) {
        reply.defer([&master] { master.ingestor->flush(); });
    }
}

bool authorized(const MasterState& master, const http::ServerRequest& request) {
    if (!master.config.auth) {
        return false;
    }
    const auto expected = "Basic " + crypto::base64_encode(master.config.auth->user + ":" +
                                                           master.config.auth->password);
    return crypto::constant_time_equal(request.header("authorization"), expected);
}

} // namespace

void MasterState::handle_http(http::ServerRequest& request, http::Reply reply) {
    const auto& path = request.path;
    if (path == "/change_hook/github") {
        github_hook(*this, request, std::move(reply));
        return;
    }
    if (path == "/healthz") {
        bool ok = true;
        {
            const std::lock_guard lock(mutex);
            ok = !stopping && accepting_builds;
        }
        Json json;
        json.begin().field("status", ok ? "ok" : "stopping").end();
        reply.send(json_response(ok ? 200 : 503, json.text()));
        return;
    }
    if (path == "/metrics") {
        std::map<std::string, int> pending_by_builder;
        if (auto pending = store->requests(store::RequestState::Pending)) {
            for (const auto& r : *pending) {
                ++pending_by_builder[r.request.builder];
            }
        }
        std::string out;
        const std::lock_guard lock(mutex);
        out += "# HELP ci_builds_pending Build requests waiting for a worker.\n"
               "# TYPE ci_builds_pending gauge\n";
        std::map<std::string, int> running_by_builder;
        for (const auto& [name, builder] : config.builders) {
            out += fmt::format("ci_builds_pending{{builder=\"{}\"}} {}\n",
                               prometheus_label(name),
                               pending_by_builder[name]);
            running_by_builder[name] = 0;
        }
        for (const auto& [id, run] : running) {
            ++running_by_builder[run.build.builder];
        }
        out += "# HELP ci_builds_running Builds running now.\n# TYPE ci_builds_running gauge\n";
        for (const auto& [name, count] : running_by_builder) {
            out += fmt::format(
                "ci_builds_running{{builder=\"{}\"}} {}\n", prometheus_label(name), count);
        }
        out += "# HELP ci_builds_finished_total Builds finished since the master started.\n"
               "# TYPE ci_builds_finished_total counter\n";
        for (const auto& [key, count] : metrics.finished) {
            out += fmt::format("ci_builds_finished_total{{builder=\"{}\",result=\"{}\"}} {}\n",
                               prometheus_label(key.first),
                               prometheus_label(key.second),
                               count);
        }
        out += "# HELP ci_build_duration_seconds How long builds ran.\n"
               "# TYPE ci_build_duration_seconds histogram\n";
        for (const auto& [builder, histogram] : metrics.durations) {
            std::uint64_t cumulative = 0;
            const auto label = prometheus_label(builder);
            for (std::size_t i = 0; i < std::size(duration_buckets); ++i) {
                cumulative += histogram.buckets[i];
                out +=
                    fmt::format("ci_build_duration_seconds_bucket{{builder=\"{}\",le=\"{}\"}} {}\n",
                                label,
                                duration_buckets[i],
                                cumulative);
            }
            out +=
                fmt::format("ci_build_duration_seconds_bucket{{builder=\"{}\",le=\"+Inf\"}} {}\n",
                            label,
                            histogram.count);
            out += fmt::format(
                "ci_build_duration_seconds_sum{{builder=\"{}\"}} {}\n", label, histogram.sum);
            out += fmt::format(
                "ci_build_duration_seconds_count{{builder=\"{}\"}} {}\n", label, histogram.count);
        }
        int connected = 0;
        for (const auto& [name, worker] : workers) {
            connected += worker.local ? 0 : 1;
        }
        out += fmt::format("# HELP ci_workers_connected Remote workers connected.\n"
                           "# TYPE ci_workers_connected gauge\nci_workers_connected {}\n",
                           connected);
        out += fmt::format("# HELP ci_webhooks_total Webhooks received, by outcome.\n"
                           "# TYPE ci_webhooks_total counter\n"
                           "ci_webhooks_total{{outcome=\"accepted\"}} {}\n"
                           "ci_webhooks_total{{outcome=\"rejected\"}} {}\n"
                           "ci_webhooks_total{{outcome=\"duplicate\"}} {}\n",
                           metrics.webhooks_accepted.load(),
                           metrics.webhooks_rejected.load(),
                           metrics.webhooks_duplicate.load());
        http::ServerResponse response;
        response.content_type = "text/plain; version=0.0.4";
        response.body = std::move(out);
        reply.send(std::move(response));
        return;
    }
    if (!path.starts_with("/api/v1") && path != "/") {
        reply.send(error_response(404, fmt::format("no such page: {}", path)));
        return;
    }
    const auto parts =
        path == "/" ? std::vector<std::string_view>() : segments(std::string_view(path).substr(7));
    const bool get = request.method == "GET" || request.method == "HEAD";
    const bool post = request.method == "POST";
    if (post && !authorized(*this, request)) {
        reply.send(error_response(
            config.auth ? 401 : 403,
            config.auth ? "this needs the user and password of the config's auth (HTTP basic)"
                        : "the config has no auth: the API is read-only"));
        return;
    }
    const auto store_error = [&](const Error& error) {
        reply.send(error_response(500, error.message));
    };

    if (parts.empty() && get) {
        Json json;
        json.begin()
            .strings("endpoints",
                     {"/api/v1/builders",
                      "/api/v1/builders/{name}/force (POST)",
                      "/api/v1/changes",
                      "/api/v1/buildrequests?state=pending (or claimed, completed, "
                      "cancelled, collapsed)",
                      "/api/v1/buildrequests/{id}",
                      "/api/v1/buildrequests/{id}/cancel (POST)",
                      "/api/v1/builds",
                      "/api/v1/builds/{id}",
                      "/api/v1/builds/{id}/stop (POST)",
                      "/api/v1/builds/{id}/steps/{n}/log?follow=1",
                      "/api/v1/builds/{id}/steps/{n}/events",
                      "/api/v1/workers",
                      "/api/v1/workers/tokens (POST)",
                      "/healthz",
                      "/metrics"})
            .end();
        reply.send(json_response(200, json.text()));
        return;
    }
    const auto what = parts.empty() ? std::string_view() : parts[0];

    if (what == "builders" && parts.size() == 1 && get) {
        std::map<std::string, int> pending_by_builder;
        if (auto pending = store->requests(store::RequestState::Pending)) {
            for (const auto& r : *pending) {
                ++pending_by_builder[r.request.builder];
            }
        }
        Json json;
        json.begin().begin_array("builders");
        const std::lock_guard lock(mutex);
        for (const auto& [name, builder] : config.builders) {
            int busy = 0;
            for (const auto& [id, run] : running) {
                busy += run.build.builder == name ? 1 : 0;
            }
            json.begin()
                .field("name", name)
                .field("repository", builder.repository)
                .strings("workers", builder.workers)
                .strings("locks", builder.locks)
                .field("pending", pending_by_builder[name])
                .field("running", busy);
            std::vector<std::string> steps;
            for (const auto& step : builder.steps) {
                steps.push_back(step.name);
            }
            json.strings("steps", steps).end();
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
        return;
    }
    if (what == "builders" && parts.size() == 3 && parts[2] == "force" && post) {
        const std::string builder(parts[1]);
        if (!config.builders.contains(builder)) {
            reply.send(error_response(404, fmt::format("no builder \"{}\"", builder)));
            return;
        }
        rapidjson::Document body;
        if (!request.body.empty()) {
            body.Parse(request.body.data(), request.body.size());
            if (body.HasParseError() || !body.IsObject()) {
                reply.send(error_response(400, "the body must be a JSON object"));
                return;
            }
        } else {
            body.SetObject();
        }
        const auto text = [&](const char* key) -> std::optional<std::string> {
            const auto member = body.FindMember(key);
            if (member == body.MemberEnd()) {
                return std::string();
            }
            if (!member->value.IsString()) {
                return std::nullopt;
            }
            return std::string(member->value.GetString(), member->value.GetStringLength());
        };
        sched::ForceRequest force;
        force.builders = {builder};
        const auto& b = config.builders.at(builder);
        force.repository = b.repository;
        auto branch = text("branch");
        auto revision = text("revision");
        auto reason = text("reason");
        if (!branch || !revision || !reason) {
            reply.send(error_response(400, "branch, revision and reason must be strings"));
            return;
        }
        force.branch =
            branch->empty() ? config.repositories.at(b.repository).default_branch : *branch;
        force.revision = *revision;
        force.reason = reason->empty() ? "forced through the API" : *reason;
        force.who = config.auth->user;
        ingestor->submit(std::move(force), {}, [reply](Result<store::Receipt> receipt) mutable {
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
        return;
    }
    if (what == "changes" && parts.size() == 1 && get) {
        const auto before = request.query.contains("before")
                                ? to_integer(request.query.at("before")).value_or(0)
                                : 0;
        auto changes = store->recent_changes(query_int(request, "limit", 50, 1000), before);
        if (!changes) {
            store_error(changes.error());
            return;
        }
        Json json;
        json.begin().begin_array("changes");
        for (const auto& change : *changes) {
            write_change(json, change);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
        return;
    }
    if (what == "buildrequests" && parts.size() == 1 && get) {
        const auto state_name =
            request.query.contains("state") ? request.query.at("state") : std::string("pending");
        const auto state = state_from(state_name);
        if (!state) {
            reply.send(error_response(
                400, "state is one of pending, claimed, completed, cancelled, collapsed"));
            return;
        }
        auto requests = store->requests(*state);
        if (!requests) {
            store_error(requests.error());
            return;
        }
        Json json;
        json.begin().begin_array("buildrequests");
        const auto limit = static_cast<std::size_t>(query_int(request, "limit", 1000, 100000));
        // The newest when there are more than the limit.
        const auto first = requests->size() > limit ? requests->size() - limit : 0;
        for (std::size_t i = first; i < requests->size(); ++i) {
            write_request(json, (*requests)[i]);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
        return;
    }
    if (what == "buildrequests" && parts.size() >= 2) {
        const auto id = to_integer(parts[1]);
        if (!id) {
            reply.send(error_response(404, "build request ids are integers"));
            return;
        }
        if (parts.size() == 2 && get) {
            auto found = store->request(*id);
            if (!found) {
                store_error(found.error());
            } else if (!*found) {
                reply.send(error_response(404, fmt::format("no build request {}", *id)));
            } else {
                Json json;
                write_request(json, **found);
                reply.send(json_response(200, json.text()));
            }
            return;
        }
        if (parts.size() == 3 && parts[2] == "cancel" && post) {
            auto cancelled = store->cancel(*id);
            if (!cancelled) {
                store_error(cancelled.error());
                return;
            }
            if (!*cancelled) {
                reply.send(error_response(
                    409, fmt::format("build request {} is not pending (or does not exist)", *id)));
                return;
            }
            log::info("build request {} cancelled by {}", *id, config.auth->user);
            Json json;
            json.begin().field("cancelled", *id).end();
            reply.send(json_response(200, json.text()));
            return;
        }
    }
    if (what == "builds" && parts.size() == 1 && get) {
        store::BuildQuery query;
        if (request.query.contains("builder")) {
            query.builder = request.query.at("builder");
        }
        if (request.query.contains("request")) {
            query.request = to_integer(request.query.at("request"));
        }
        query.unfinished_only = request.query.contains("running");
        if (request.query.contains("before")) {
            query.before_id = to_integer(request.query.at("before")).value_or(0);
        }
        query.limit = query_int(request, "limit", 50, 1000);
        auto builds = store->builds(query);
        if (!builds) {
            store_error(builds.error());
            return;
        }
        Json json;
        json.begin().begin_array("builds");
        std::map<std::int64_t, std::optional<store::BuildRequest>> requests;
        for (const auto& build : *builds) {
            auto& found = requests[build.request_id];
            if (!found) {
                if (auto read = store->request(build.request_id); read && *read) {
                    found = std::move(*read);
                }
            }
            write_build(json, build, found ? &*found : nullptr, nullptr);
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
        return;
    }
    if (what == "builds" && parts.size() >= 2) {
        const auto id = to_integer(parts[1]);
        if (!id) {
            reply.send(error_response(404, "build ids are integers"));
            return;
        }
        auto build = store->build(*id);
        if (!build) {
            store_error(build.error());
            return;
        }
        if (!*build) {
            reply.send(error_response(404, fmt::format("no build {}", *id)));
            return;
        }
        if (parts.size() == 2 && get) {
            auto steps = store->steps(*id);
            if (!steps) {
                store_error(steps.error());
                return;
            }
            auto requested = store->request((*build)->request_id);
            const store::BuildRequest* found = requested && *requested ? &**requested : nullptr;
            Json json;
            write_build(json, **build, found, &*steps);
            reply.send(json_response(200, json.text()));
            return;
        }
        if (parts.size() == 3 && parts[2] == "stop" && post) {
            if ((*build)->finished) {
                reply.send(error_response(409, fmt::format("build {} has finished", *id)));
                return;
            }
            stop_build(*id, config.auth->user);
            Json json;
            json.begin().field("stopping", *id).end();
            reply.send(json_response(202, json.text()));
            return;
        }
        const auto step_number = parts.size() == 5 ? to_integer(parts[3]) : std::nullopt;
        if (parts.size() == 5 && parts[2] == "steps" && step_number && get &&
            (parts[4] == "log" || parts[4] == "events")) {
            const int step = static_cast<int>(*step_number);
            const bool events = parts[4] == "events";
            const bool follow = events || request.query.contains("follow");
            // Under the master's lock: no chunk can arrive between the stored log and the
            // follower's registration. Chunks are queued under it too: wait (outside it) until
            // none of this build's is still on its way to the disk.
            std::unique_lock lock(mutex);
            for (int tries = 0; tries < 20 && log_writer->queued(*id) > 0; ++tries) {
                lock.unlock();
                const auto flushed = log_writer->flush(*id, std::chrono::seconds(1));
                lock.lock();
                if (!flushed) {
                    break; // the disk fails: what is stored is all there is
                }
            }
            auto text = store->log(*id, step);
            if (!text) {
                lock.unlock();
                store_error(text.error());
                return;
            }
            const auto run = running.find(*id);
            const bool live = run != running.end() && !run->second.finished_steps.contains(step);
            if (!follow || !live) {
                lock.unlock();
                if (!events) {
                    http::ServerResponse response;
                    response.content_type = "text/plain; charset=utf-8";
                    response.body = std::move(*text);
                    reply.send(std::move(response));
                    return;
                }
                std::string body = text->empty() ? std::string() : sse_event("log", *text);
                auto steps = store->steps(*id);
                std::string result = "unknown";
                if (steps) {
                    for (const auto& s : *steps) {
                        if (s.number == step) {
                            result = s.result;
                        }
                    }
                }
                body += sse_event("end",
                                  (*build)->finished && result.empty() ? (*build)->result : result);
                http::ServerResponse response;
                response.content_type = "text/event-stream";
                response.headers.emplace_back("Cache-Control", "no-cache");
                response.body = std::move(body);
                reply.send(std::move(response));
                return;
            }
            auto stream = reply.stream(200,
                                       events ? "text/event-stream" : "text/plain; charset=utf-8",
                                       {{"Cache-Control", "no-cache"}});
            if (!text->empty()) {
                stream->write(events ? sse_event("log", *text) : std::move(*text));
            }
            run->second.followers[step].push_back(Follower{std::move(stream), events});
            return;
        }
    }
    if (what == "workers" && parts.size() == 2 && parts[1] == "tokens" && post) {
        rapidjson::Document body;
        body.Parse(request.body.data(), request.body.size());
        const auto member = [&](const char* key) -> std::string {
            if (body.HasParseError() || !body.IsObject()) {
                return {};
            }
            const auto found = body.FindMember(key);
            return found != body.MemberEnd() && found->value.IsString()
                       ? std::string(found->value.GetString(), found->value.GetStringLength())
                       : std::string();
        };
        const auto worker_class = member("class");
        if (worker_class.empty()) {
            reply.send(error_response(400, "the body must be {\"class\": \"<EC2 worker class>\"}"));
            return;
        }
        auto issued = issue_worker_token(worker_class, member("name"), std::chrono::minutes(15));
        if (!issued) {
            reply.send(error_response(issued.error().code == ErrorCode::Conflict ? 409 : 400,
                                      issued.error().message));
            return;
        }
        Json json;
        json.begin()
            .field("name", issued->name)
            .field("token", issued->token)
            .time("expires", issued->expires)
            .end();
        reply.send(json_response(201, json.text()));
        return;
    }
    if (what == "workers" && parts.size() == 1 && get) {
        auto stored = store->workers();
        if (!stored) {
            store_error(stored.error());
            return;
        }
        Json json;
        json.begin().begin_array("workers");
        const std::lock_guard lock(mutex);
        for (const auto& record : *stored) {
            const auto live = workers.find(record.name);
            json.begin()
                .field("name", record.name)
                .field("class", record.worker_class)
                .field("connected", live != workers.end())
                .field("local", live != workers.end() && live->second.local)
                .field("state",
                       live != workers.end() ? (live->second.draining         ? "draining"
                                                : live->second.builds.empty() ? "idle"
                                                                              : "building")
                                             : std::string_view(record.state))
                .time("last_seen", record.last_seen);
            std::vector<std::int64_t> builds;
            if (live != workers.end()) {
                builds.assign(live->second.builds.begin(), live->second.builds.end());
            }
            json.ids("builds", builds).end();
        }
        json.end_array().end();
        reply.send(json_response(200, json.text()));
        return;
    }
    reply.send(error_response(
        (get || post) ? 404 : 405,
        fmt::format("no {} {} in the API (GET /api/v1 lists it)", request.method, path)));
}

} // namespace ci::master::detail
