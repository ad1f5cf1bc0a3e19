#include "ci/worker/imds.h"

#include <algorithm>
#include <condition_variable>
#include <optional>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/http/client.h>

#include "core/json.h"

namespace ci::worker::imds {

namespace {

constexpr std::string_view action_path = "/latest/meta-data/spot/instance-action";
constexpr std::string_view rebalance_path = "/latest/meta-data/events/recommendations/rebalance";
constexpr int token_seconds = 21600;

// Printable ASCII only, at most 100 characters: the detail goes into logs and the protocol.
std::string printable(std::string text) {
    std::ranges::replace_if(
        text, [](char c) { return c < 0x20 || c > 0x7e || c == '"' || c == '\\'; }, '?');
    if (text.size() > 100) {
        text.resize(100);
    }
    return text;
}

Result<std::optional<std::string>>
read_notice(int status, std::string_view body, std::string_view what, std::string_view key) {
    if (status == 404) {
        return std::nullopt;
    }
    if (status != 200) {
        return fail(ErrorCode::InvalidArgument, fmt::format("{}: HTTP {}", what, status));
    }
    auto object = json::parse_object(body);
    if (!object) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: {}", what, object.error().message));
    }
    auto value = json::string_member(*object, key);
    if (!value) {
        return fail(ErrorCode::InvalidArgument, fmt::format("{}: {}", what, value.error().message));
    }
    return std::optional<std::string>(printable(value->value_or("")));
}

} // namespace

Result<Observation> interpret(int action_status,
                              std::string_view action_body,
                              int rebalance_status,
                              std::string_view rebalance_body) {
    auto action = read_notice(action_status, action_body, "spot/instance-action", "action");
    if (!action) {
        return fail(action.error());
    }
    if (*action) {
        auto object = json::parse_object(action_body);
        const auto time = printable(json::text_or_empty(*object, "time"));
        return Observation{Notice::Interruption,
                           fmt::format("spot instance-action: {} at {}", **action, time)};
    }
    auto rebalance =
        read_notice(rebalance_status, rebalance_body, "rebalance recommendation", "noticeTime");
    if (!rebalance) {
        return fail(rebalance.error());
    }
    if (*rebalance) {
        return Observation{Notice::Rebalance,
                           fmt::format("rebalance recommendation at {}", **rebalance)};
    }
    return Observation{};
}

Result<std::unique_ptr<Watcher>> Watcher::start(const std::string& url,
                                                std::chrono::milliseconds interval) {
    std::string_view host = url;
    if (!host.starts_with("http://")) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("instance metadata URL \"{}\": expected http://HOST[:PORT]", url));
    }
    host.remove_prefix(7);
    while (host.ends_with('/')) {
        host.remove_suffix(1);
    }
    if (host.empty() || host.find('/') != std::string_view::npos ||
        std::ranges::any_of(host, [](char c) { return c <= ' ' || c == '@' || c > '~'; })) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("instance metadata URL \"{}\": expected http://HOST[:PORT]", url));
    }
    std::unique_ptr<Watcher> watcher(new Watcher(std::string(host), interval));
    watcher->thread_ =
        std::jthread([raw = watcher.get()](const std::stop_token& stop) { raw->run(stop); });
    return watcher;
}

Watcher::Watcher(std::string host, std::chrono::milliseconds interval)
    : host_(std::move(host)), interval_(interval) {
    http::ClientOptions options;
    // The metadata service answers at once on a link-local address; a slow answer is a
    // failure, retried at the next poll rather than within this one.
    options.connect_timeout = std::chrono::milliseconds(1000);
    options.timeout = std::chrono::milliseconds(2000);
    options.retry.max_attempts = 1;
    client_ = http::make_client(options);
}

Watcher::~Watcher() {
    thread_.request_stop();
    if (thread_.joinable()) {
        thread_.join();
    }
}

Observation Watcher::seen() const {
    const std::lock_guard lock(mutex_);
    return seen_;
}

Result<Observation> Watcher::poll() {
    const auto now = std::chrono::steady_clock::now();
    if (token_.empty() || now >= token_expires_) {
        http::Request put;
        put.method = "PUT";
        put.scheme = "http";
        put.host = host_;
        put.path = "/latest/api/token";
        put.headers.push_back(
            {"X-aws-ec2-metadata-token-ttl-seconds", std::to_string(token_seconds)});
        auto answer = client_->send(put);
        if (!answer) {
            return fail(answer.error());
        }
        if (answer->status != 200 || answer->body.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("PUT /latest/api/token: HTTP {}", answer->status));
        }
        token_ = std::move(answer->body);
        (void)log::add_secret(token_);
        token_expires_ = now + std::chrono::seconds(token_seconds - 60);
    }
    const auto get = [&](std::string_view path) {
        http::Request request;
        request.scheme = "http";
        request.host = host_;
        request.path = std::string(path);
        request.headers.push_back({"X-aws-ec2-metadata-token", token_});
        return client_->send(request);
    };
    auto action = get(action_path);
    if (!action) {
        return fail(action.error());
    }
    auto rebalance = get(rebalance_path);
    if (!rebalance) {
        return fail(rebalance.error());
    }
    if (action->status == 401 || rebalance->status == 401) {
        token_.clear(); // expired or revoked: a new one at the next poll
        return fail(ErrorCode::PermissionDenied,
                    "the instance metadata service refused its session token (401)");
    }
    return interpret(action->status, action->body, rebalance->status, rebalance->body);
}

void Watcher::run(const std::stop_token& stop) {
    bool failing = false;
    while (!stop.stop_requested()) {
        auto observed = poll();
        if (!observed) {
            if (!failing) {
                log::warn("instance metadata at http://{}: {} (polling on)",
                          host_,
                          observed.error().message);
            }
            failing = true;
        } else {
            failing = false;
            const std::lock_guard lock(mutex_);
            if (observed->notice > seen_.notice) {
                log::warn("instance metadata: {}", observed->detail);
                seen_ = std::move(*observed);
            }
        }
        std::mutex wait;
        std::unique_lock lock(wait);
        std::condition_variable_any().wait_for(lock, stop, interval_, [] { return false; });
    }
}

} // namespace ci::worker::imds
