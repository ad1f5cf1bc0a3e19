#pragma once

/// \file
/// Where AWS credentials come from. Clients ask a CredentialsProvider before each request, so
/// that temporary credentials (an instance role's) are refreshed before they expire.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <ci/aws/sigv4.h>
#include <ci/core/error.h>

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

} // namespace ci::aws
