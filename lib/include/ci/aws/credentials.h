#pragma once

/// \file
/// Where AWS credentials come from. Clients ask a CredentialsProvider before each request, so
/// that temporary credentials (an instance role's) are refreshed before they expire.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <ci/aws/sigv4.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>

namespace ci::aws {

/// Credentials with the time they stop being valid (temporary ones).
struct TimedCredentials {
    Credentials credentials;
    std::optional<std::chrono::system_clock::time_point> expiration; ///< nullopt: long-term keys
    std::string source; ///< where they came from, for messages: "config", "environment", ...
};

/// A source of credentials. Thread-safe.
class CredentialsProvider {
public:
    virtual ~CredentialsProvider() = default;
    /// Current credentials; fails with AwsCredentials naming what was tried.
    [[nodiscard]] virtual Result<TimedCredentials> get() = 0;
};

/// A provider that always returns the same long-term keys (aws.identifier and
/// aws.secret_identifier of the config, or keys a test minted).
[[nodiscard]] std::shared_ptr<CredentialsProvider> make_static_credentials(Credentials credentials,
                                                                           std::string source);

/// Reads a variable of the environment; nullopt when unset. Injected so tests need not change
/// the process environment.
using EnvironmentLookup = std::function<std::optional<std::string>(const std::string&)>;

/// The process environment (std::getenv).
[[nodiscard]] EnvironmentLookup process_environment();

/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. Fails with AwsCredentials
/// when the first two are not both set.
[[nodiscard]] Result<TimedCredentials> credentials_from_environment(const EnvironmentLookup& env);

/// The profile `profile` of a shared credentials file (INI: aws_access_key_id,
/// aws_secret_access_key, aws_session_token). Fails with AwsCredentials naming the file and
/// profile when the file or the profile or its keys are missing.
[[nodiscard]] Result<TimedCredentials> credentials_from_file(const std::filesystem::path& file,
                                                             const std::string& profile);

/// Where the credentials chain looks, in the AWS CLI's order.
struct CredentialsChainOptions {
    /// 1. Explicit keys (aws.identifier / aws.secret_identifier of the config), when set.
    std::optional<Credentials> explicit_credentials;
    /// 2. The environment; 3. its AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, from
    /// HOME) and AWS_PROFILE (default "default").
    EnvironmentLookup environment = process_environment();
    /// 4. The EC2 instance role through IMDSv2 at this endpoint (AWS_EC2_METADATA_SERVICE_ENDPOINT
    /// overrides it; AWS_EC2_METADATA_DISABLED=true skips it).
    std::string imds_endpoint = "http://169.254.169.254";
    /// Sends the IMDS requests; null skips the instance role.
    std::shared_ptr<http::Client> http;
    /// Decides when role credentials are refreshed (five minutes before they expire).
    const Clock* clock = &SystemClock::instance();
};

/// The first source of the chain that has credentials, resolved on the first get() and kept;
/// instance-role credentials are refreshed before they expire. Fails with AwsCredentials listing
/// every source tried and why it had nothing.
[[nodiscard]] std::shared_ptr<CredentialsProvider>
make_credentials_chain(CredentialsChainOptions options);

/// Instance-role credentials from IMDSv2: a session token (PUT /latest/api/token), the role
/// name, then the role's keys; cached until five minutes before they expire.
[[nodiscard]] std::shared_ptr<CredentialsProvider> make_instance_role_credentials(
    std::shared_ptr<http::Client> http, std::string endpoint, const Clock& clock);

} // namespace ci::aws
