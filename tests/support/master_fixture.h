#pragma once

// An in-process ci::master::Master for tests: its state in a temp directory, both ports chosen
// by the kernel, a local worker class, and an HTTP client (libci's own, over real sockets) to
// talk to it.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <ci/config/config.h>
#include <ci/http/client.h>
#include <ci/master/master.h>

#include "support/temp_dir.h"

namespace ci::test {

class MasterFixture {
public:
    /// `config_yaml` is a config without `buildmaster` and `auth` (this adds them: ports 0, the
    /// state in the temp directory; `auth` unless `with_auth` is false). Fails the test when the
    /// config or the start fails.
    explicit MasterFixture(const std::string& config_yaml,
                           bool with_auth = true,
                           master::MasterOptions opts = {});
    ~MasterFixture();

    /// Starts the master (again, after stop(): the same state).
    void start();
    /// Stops it gracefully.
    void stop();

    http::Response get(const std::string& target);
    http::Response post(const std::string& target,
                        const std::string& body = {},
                        const std::vector<std::pair<std::string, std::string>>& headers = {});
    /// POST with the config's auth.
    http::Response post_auth(const std::string& target, const std::string& body = {});

    /// Polls GET `target` until `done(response)` or the timeout; returns the last response.
    template <class Done>
    http::Response wait_for(const std::string& target,
                            Done done,
                            std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto response = get(target);
            if (done(response) || std::chrono::steady_clock::now() > deadline) {
                return response;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    TempDir dir{"libci-master"};
    config::Config config;
    master::MasterOptions options;
    std::unique_ptr<master::Master> master;
    std::string user = "admin";
    std::string password = "secret-password-for-tests";

private:
    std::unique_ptr<http::Client> client_;
};

/// A GitHub push payload for `branch` of the repository at `url`, moving to `after`.
std::string
push_payload(const std::string& url, const std::string& branch, const std::string& after);

/// The X-Hub-Signature-256 header value of `body` under `secret`, computed with OpenSSL's HMAC()
/// (not libci's crypto).
std::string github_signature(const std::string& secret, const std::string& body);

} // namespace ci::test
