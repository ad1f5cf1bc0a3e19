// The credentials chain: explicit keys, the environment and the shared credentials file, in the
// AWS CLI's order, with an injected environment and a temporary HOME.

#include <array>
#include <atomic>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/aws/credentials.h>
#include <ci/core/log.h>

#include "support/local_http_server.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

ci::aws::EnvironmentLookup fake_environment(std::map<std::string, std::string> values) {
    return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
        const auto it = values.find(name);
        if (it == values.end()) {
            return std::nullopt;
        }
        return it->second;
    };
}

const char* credentials_file = R"(# a comment
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[ci]
aws_access_key_id=AKIACI
aws_secret_access_key=ci-secret
aws_session_token = ci-token

[broken]
aws_access_key_id = AKIABROKEN
)";

} // namespace

TEST_CASE("credentials: the environment") {
    auto found =
        ci::aws::credentials_from_environment(fake_environment({{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                                                {"AWS_SECRET_ACCESS_KEY", "s"},
                                                                {"AWS_SESSION_TOKEN", "t"}}));
    REQUIRE_OK(found);
    CHECK(found->credentials == ci::aws::Credentials{"AKIAENV", "s", "t"});
    CHECK(found->source == "environment");
    auto missing =
        ci::aws::credentials_from_environment(fake_environment({{"AWS_ACCESS_KEY_ID", "AKIA"}}));
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::AwsCredentials);
}

TEST_CASE("credentials: the shared credentials file and its profiles") {
    ci::test::TempDir home;
    const auto file = ci::test::write_file(home / ".aws/credentials", credentials_file);
    auto by_default = ci::aws::credentials_from_file(file, "default");
    REQUIRE_OK(by_default);
    CHECK(by_default->credentials == ci::aws::Credentials{"AKIADEFAULT", "default-secret", ""});
    auto ci_profile = ci::aws::credentials_from_file(file, "ci");
    REQUIRE_OK(ci_profile);
    CHECK(ci_profile->credentials == ci::aws::Credentials{"AKIACI", "ci-secret", "ci-token"});
    auto broken = ci::aws::credentials_from_file(file, "broken");
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error().message.find("lacks aws_access_key_id or aws_secret_access_key") !=
          std::string::npos);
    auto absent = ci::aws::credentials_from_file(file, "nope");
    REQUIRE_FALSE(absent.has_value());
    CHECK(absent.error().message.find("no profile [nope]") != std::string::npos);
    CHECK_FALSE(ci::aws::credentials_from_file(home / "none", "default").has_value());
}

TEST_CASE("credentials: the chain takes the first source that has keys, in the CLI's order") {
    ci::test::TempDir home;
    ci::test::write_file(home / ".aws/credentials", credentials_file);
    const std::map<std::string, std::string> env_keys = {{"AWS_ACCESS_KEY_ID", "AKIAENV"},
                                                         {"AWS_SECRET_ACCESS_KEY", "env-secret"},
                                                         {"HOME", home.path().string()}};
    const auto chain_source = [](ci::aws::CredentialsChainOptions options) {
        auto provider = ci::aws::make_credentials_chain(std::move(options));
        auto credentials = provider->get();
        REQUIRE_OK(credentials);
        return credentials->source;
    };

    ci::aws::CredentialsChainOptions options;
    options.explicit_credentials = ci::aws::Credentials{"AKIACONFIG", "config-secret", ""};
    options.environment = fake_environment(env_keys);
    CHECK(chain_source(options) == "config");

    options.explicit_credentials.reset();
    CHECK(chain_source(options) == "environment");

    options.environment = fake_environment({{"HOME", home.path().string()}});
    CHECK(chain_source(options).starts_with("profile default of "));

    options.environment = fake_environment({{"HOME", home.path().string()}, {"AWS_PROFILE", "ci"}});
    CHECK(chain_source(options).starts_with("profile ci of "));

    options.environment =
        fake_environment({{"AWS_SHARED_CREDENTIALS_FILE", (home / ".aws/credentials").string()},
                          {"AWS_PROFILE", "ci"}});
    CHECK(chain_source(options).starts_with("profile ci of "));
}

TEST_CASE("credentials: with no source, the error lists every source tried") {
    ci::test::TempDir home;
    ci::aws::CredentialsChainOptions options;
    options.environment =
        fake_environment({{"HOME", home.path().string()}, {"AWS_EC2_METADATA_DISABLED", "true"}});
    auto provider = ci::aws::make_credentials_chain(options);
    auto result = provider->get();
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ci::ErrorCode::AwsCredentials);
    const std::string& message = result.error().message;
    CHECK(message.find("config: no aws.identifier") != std::string::npos);
    CHECK(message.find("AWS_ACCESS_KEY_ID") != std::string::npos);
    CHECK(message.find(".aws/credentials: cannot be read") != std::string::npos);
    CHECK(message.find("AWS_EC2_METADATA_DISABLED=true") != std::string::npos);
}

namespace {

// A fake EC2 instance metadata service that insists on IMDSv2: a session token from
// PUT /latest/api/token, then every GET must carry it.
class FakeImds {
public:
    explicit FakeImds(std::chrono::system_clock::time_point expiration)
        : server_([this](const ci::test::ReceivedRequest& r) { return answer(r); }),
          expiration_(expiration) {}

    [[nodiscard]] std::string url() const { return server_.url(); }
    [[nodiscard]] int credential_fetches() const { return fetches_; }
    [[nodiscard]] std::vector<ci::test::ReceivedRequest> requests() const {
        return server_.requests();
    }
    std::atomic<bool> refuse_tokens{false};

private:
    ci::test::Reply answer(const ci::test::ReceivedRequest& r) {
        using ci::test::Reply;
        if (r.method == "PUT" && r.target == "/latest/api/token") {
            if (refuse_tokens || r.header("x-aws-ec2-metadata-token-ttl-seconds") == nullptr) {
                return Reply{400, {}, "", {}, false};
            }
            return Reply{200, {}, token_, {}, false};
        }
        const std::string* token = r.header("x-aws-ec2-metadata-token");
        if (r.method != "GET" || token == nullptr || *token != token_) {
            return Reply{401, {}, "", {}, false};
        }
        if (r.target == "/latest/meta-data/iam/security-credentials/") {
            return Reply{200, {}, "ci-worker-role\n", {}, false};
        }
        if (r.target == "/latest/meta-data/iam/security-credentials/ci-worker-role") {
            ++fetches_;
            const std::time_t expires = std::chrono::system_clock::to_time_t(expiration_);
            std::tm utc{};
            ::gmtime_r(&expires, &utc);
            std::array<char, 32> text{};
            std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
            return Reply{
                200,
                {},
                std::string(R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAROLE)") +
                    std::to_string(fetches_.load()) +
                    R"(","SecretAccessKey":"role-secret","Token":"role-token","Expiration":")" +
                    text.data() + R"("})",
                {},
                false};
        }
        return Reply{404, {}, "", {}, false};
    }

    ci::test::LocalHttpServer server_;
    std::chrono::system_clock::time_point expiration_;
    const std::string token_ = "AQAEAimdsv2token==";
    std::atomic<int> fetches_{0};
};

std::shared_ptr<ci::http::Client> imds_client() {
    ci::http::ClientOptions options;
    options.timeout = std::chrono::seconds(5);
    options.retry.max_attempts = 1;
    return ci::http::make_client(options);
}

} // namespace

TEST_CASE("credentials: the instance role through IMDSv2, refreshed before it expires") {
    const auto start = std::chrono::system_clock::from_time_t(1764000000);
    ci::ManualClock clock(start);
    FakeImds imds(start + std::chrono::hours(1));
    auto provider = ci::aws::make_instance_role_credentials(imds_client(), imds.url(), clock);

    auto first = provider->get();
    REQUIRE_OK(first);
    CHECK(first->credentials == ci::aws::Credentials{"ASIAROLE1", "role-secret", "role-token"});
    CHECK(first->source == "instance role ci-worker-role");
    CHECK(first->expiration == start + std::chrono::hours(1));
    // Every metadata GET carried the session token (the fake answers 401 otherwise).
    for (const auto& request : imds.requests()) {
        if (request.method == "GET") {
            CHECK(request.header("x-aws-ec2-metadata-token") != nullptr);
        }
    }

    clock.advance(std::chrono::minutes(50)); // still 10 minutes left: cached
    REQUIRE_OK(provider->get());
    CHECK(imds.credential_fetches() == 1);
    clock.advance(std::chrono::minutes(6)); // 4 minutes left: inside the 5-minute margin
    auto refreshed = provider->get();
    REQUIRE_OK(refreshed);
    CHECK(imds.credential_fetches() == 2);
    CHECK(refreshed->credentials.access_key_id == "ASIAROLE2");

    // A failing refresh keeps serving keys that have not expired yet.
    imds.refuse_tokens = true;
    clock.advance(std::chrono::seconds(30));
    auto kept = provider->get();
    REQUIRE_OK(kept);
    CHECK(kept->credentials.access_key_id == "ASIAROLE2");
}

TEST_CASE("credentials: the chain falls through to the instance role, and says why it fails") {
    const auto start = std::chrono::system_clock::from_time_t(1764000000);
    ci::ManualClock clock(start);
    FakeImds imds(start + std::chrono::hours(6));
    ci::test::TempDir home;
    ci::aws::CredentialsChainOptions options;
    options.environment = fake_environment(
        {{"HOME", home.path().string()}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()}});
    options.http = imds_client();
    options.clock = &clock;
    auto found = ci::aws::make_credentials_chain(options)->get();
    REQUIRE_OK(found);
    CHECK(found->source == "instance role ci-worker-role");

    imds.refuse_tokens = true;
    auto refused = ci::aws::make_credentials_chain(options)->get();
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.find(
              "instance metadata token (PUT /latest/api/token): HTTP 400") != std::string::npos);
}

TEST_CASE("credentials: secrets of every source are redacted from logs") {
    auto provider =
        ci::aws::make_static_credentials({"AKIAX", "static-secret-value", "tok-value"}, "test");
    CHECK(ci::log::redact("secret static-secret-value, token tok-value") ==
          "secret [redacted], token [redacted]");
    ci::log::clear_secrets();
}
