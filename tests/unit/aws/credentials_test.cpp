// The credentials chain: explicit keys, the environment and the shared credentials file, in the
// AWS CLI's order, with an injected environment and a temporary HOME.

#include <map>
#include <string>

#include <doctest/doctest.h>

#include <ci/aws/credentials.h>

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
