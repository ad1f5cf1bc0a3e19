#include "support/master_fixture.h"

#include <array>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <ci/config/load.h>
#include <ci/core/crypto.h>

namespace ci::test {

MasterFixture::MasterFixture(const std::string& config_yaml,
                             bool with_auth,
                             master::MasterOptions opts)
    : options(std::move(opts)) {
    const auto text =
        fmt::format("buildmaster: {{web_port: 0, worker_port: 0, state: {}}}\n{}{}",
                    (dir / "state.sqlite").string(),
                    with_auth ? fmt::format("auth: {{user: {}, password: {}}}\n", user, password)
                              : std::string(),
                    config_yaml);
    auto checked = config::parse_config(text, "test.yml");
    if (!checked.ok()) {
        for (const auto& diagnostic : checked.diagnostics) {
            MESSAGE(diagnostic.to_string());
        }
    }
    REQUIRE(checked.ok());
    config = *checked.config;
    options.listen_address = "127.0.0.1";
    options.data_dir = dir.path();
    options.shutdown_grace = std::chrono::seconds(5);
    http::ClientOptions client_options;
    client_options.retry.max_attempts = 1;
    client_options.timeout = std::chrono::seconds(30);
    client_ = http::make_client(client_options);
    start();
}

MasterFixture::~MasterFixture() {
    stop();
}

void MasterFixture::start() {
    auto started = master::Master::start(config, options);
    if (!started) {
        MESSAGE(started.error().message);
    }
    REQUIRE(started.has_value());
    master = std::move(*started);
}

void MasterFixture::stop() {
    master.reset();
}

namespace {
http::Request
request_for(const master::Master& master, std::string method, const std::string& target) {
    http::Request request;
    request.method = std::move(method);
    request.scheme = "http";
    request.host = fmt::format("127.0.0.1:{}", master.web_port());
    const auto question = target.find('?');
    request.path = target.substr(0, question);
    if (question != std::string::npos) {
        request.query = target.substr(question + 1);
    }
    return request;
}
} // namespace

http::Response MasterFixture::get(const std::string& target) {
    auto response = client_->send(request_for(*master, "GET", target));
    REQUIRE(response.has_value());
    return *response;
}

http::Response
MasterFixture::post(const std::string& target,
                    const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
    auto request = request_for(*master, "POST", target);
    request.body = body;
    bool typed = false;
    for (const auto& [name, value] : headers) {
        request.headers.push_back(http::Header{name, value});
        typed = typed || name == "Content-Type" || name == "content-type";
    }
    // The API takes JSON bodies sent as JSON only (curl would say form data).
    if (!body.empty() && !typed) {
        request.headers.push_back(http::Header{"Content-Type", "application/json"});
    }
    auto response = client_->send(request);
    REQUIRE(response.has_value());
    return *response;
}

http::Response MasterFixture::post_auth(const std::string& target, const std::string& body) {
    return post(
        target, body, {{"Authorization", "Basic " + crypto::base64_encode(user + ":" + password)}});
}

std::string
push_payload(const std::string& url, const std::string& branch, const std::string& after) {
    const auto commit = fmt::format(
        R"({{"id": "{}", "message": "work", "timestamp": "2026-11-30T07:00:00Z",
        "author": {{"name": "Dev", "email": "dev@example.org"}},
        "added": [], "modified": ["a.txt"], "removed": []}})",
        after);
    return fmt::format(
        R"({{"ref": "refs/heads/{}", "before": "{}", "after": "{}", "created": false,
        "deleted": false, "forced": false, "commits": [{}], "head_commit": {},
        "repository": {{"name": "r", "full_name": "o/r", "clone_url": "{}", "html_url": "{}",
        "url": "{}"}}, "pusher": {{"name": "dev"}}}})",
        branch,
        std::string(40, '0'),
        after,
        commit,
        commit,
        url,
        url,
        url);
}

std::string github_signature(const std::string& secret, const std::string& body) {
    // OpenSSL's one-shot HMAC(), not libci's crypto: the master's check is tested against an
    // independent implementation.
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    HMAC(EVP_sha256(),
         secret.data(),
         static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(body.data()),
         body.size(),
         digest.data(),
         &size);
    std::string out = "sha256=";
    for (unsigned int i = 0; i < size; ++i) {
        out += fmt::format("{:02x}", digest[i]);
    }
    return out;
}

} // namespace ci::test
