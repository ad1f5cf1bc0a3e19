#pragma once

/// \file
/// Notices of the EC2 instance metadata service (IMDSv2) that an instance is going away: a spot
/// interruption (`/latest/meta-data/spot/instance-action`, about two minutes ahead) and a
/// rebalance recommendation (`/latest/meta-data/events/recommendations/rebalance`, an elevated
/// risk of interruption). `ci-worker start --imds URL` watches them (worker::WorkerOptions::
/// imds_url) and tells its master (docs/api.md, "Spot interruptions").

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include <ci/core/error.h>

namespace ci::http {
class Client;
}

namespace ci::worker::imds {

/// What the instance was told, in increasing order of urgency.
enum class Notice {
    None,         ///< nothing (both paths answer 404)
    Rebalance,    ///< a rebalance recommendation: take no new builds
    Interruption, ///< a spot interruption notice: the instance stops or terminates soon
};

/// What one poll saw.
struct Observation {
    Notice notice = Notice::None;
    std::string detail; ///< for people: "spot instance-action: terminate at 2026-...Z"
};

/// Reads the two answers of one poll (HTTP status and body of instance-action, then of
/// rebalance): 200 with a JSON object is a notice, 404 none. Fails with InvalidArgument for
/// anything else (another status, a body that is not the documented JSON). Pure.
[[nodiscard]] Result<Observation> interpret(int action_status,
                                            std::string_view action_body,
                                            int rebalance_status,
                                            std::string_view rebalance_body);

/// Polls the metadata service at `url` ("http://169.254.169.254") every `interval` on a thread
/// of its own, with an IMDSv2 session token (PUT /latest/api/token with
/// X-aws-ec2-metadata-token-ttl-seconds, renewed before it expires and after a 401). What it
/// saw is sticky: the most urgent notice so far. Failures are logged (once until a poll works
/// again) and polling goes on. Thread-safe; the destructor stops the thread.
class Watcher {
public:
    /// Fails with InvalidArgument when `url` is not "http://HOST[:PORT]".
    [[nodiscard]] static Result<std::unique_ptr<Watcher>> start(const std::string& url,
                                                                std::chrono::milliseconds interval);
    ~Watcher();
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;

    /// The most urgent notice seen so far, and its detail.
    [[nodiscard]] Observation seen() const;

private:
    Watcher(std::string host, std::chrono::milliseconds interval);
    void run(const std::stop_token& stop);
    Result<Observation> poll();

    std::string host_;
    std::chrono::milliseconds interval_;
    std::unique_ptr<http::Client> client_;
    std::string token_;
    std::chrono::steady_clock::time_point token_expires_;
    mutable std::mutex mutex_;
    Observation seen_;
    std::jthread thread_;
};

} // namespace ci::worker::imds
