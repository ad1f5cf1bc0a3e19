#include "ci/aws/credentials.h"

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <ci/core/log.h>

#include "core/json.h"

namespace ci::aws {

namespace {

// Role credentials are replaced this long before they expire, as the AWS SDKs do, so that a
// request signed now is still valid when it arrives.
constexpr std::chrono::minutes refresh_margin{5};

std::unexpected<Error> no_credentials(std::string message) {
    return fail(ErrorCode::AwsCredentials, std::move(message));
}

class StaticCredentials final : public CredentialsProvider {
public:
    // Whatever the keys' source, their secret parts are redacted from every log line from now on.
    explicit StaticCredentials(TimedCredentials credentials)
        : credentials_(std::move(credentials)) {
        (void)log::add_secret(credentials_.credentials.secret_access_key);
        (void)log::add_secret(credentials_.credentials.session_token);
    }

    Result<TimedCredentials> get() override { return credentials_; }

private:
    const TimedCredentials credentials_;
};

std::string trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r");
    return std::string(text.substr(first, last - first + 1));
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& text) {
    std::tm tm{};
    if (::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

class InstanceRoleCredentials final : public CredentialsProvider {
public:
    InstanceRoleCredentials(std::shared_ptr<http::Client> http,
                            std::string endpoint,
                            const Clock& clock)
        : http_(std::move(http)), endpoint_(std::move(endpoint)), clock_(clock) {
        while (!endpoint_.empty() && endpoint_.back() == '/') {
            endpoint_.pop_back();
        }
    }

    Result<TimedCredentials> get() override {
        const std::lock_guard lock(mutex_);
        if (cached_ && cached_->expiration &&
            clock_.now() + refresh_margin < *cached_->expiration) {
            return *cached_;
        }
        auto fresh = fetch();
        if (!fresh) {
            // Keys that have not expired yet still work: use them until the metadata service
            // answers again, rather than fail every request at once.
            if (cached_ && cached_->expiration && clock_.now() < *cached_->expiration) {
                log::warn("refreshing instance-role credentials failed, using the current ones "
                          "until they expire: {}",
                          fresh.error().message);
                return *cached_;
            }
            return fresh;
        }
        (void)log::add_secret(fresh->credentials.secret_access_key);
        (void)log::add_secret(fresh->credentials.session_token);
        cached_ = *fresh;
        return fresh;
    }

private:
    Result<http::Request> request(std::string method, const std::string& path) const {
        auto colon = endpoint_.find("://");
        if (colon == std::string::npos) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("instance metadata endpoint \"{}\" is not a URL", endpoint_));
        }
        http::Request out;
        out.method = std::move(method);
        out.scheme = endpoint_.substr(0, colon);
        out.host = endpoint_.substr(colon + 3);
        out.path = path;
        return out;
    }

    Result<std::string> fetch_text(const http::Request& request, std::string_view what) {
        auto response = http_->send(request);
        if (!response) {
            return no_credentials(
                fmt::format("instance metadata {}: {}", what, response.error().message));
        }
        if (response->status != 200) {
            return no_credentials(
                fmt::format("instance metadata {}: HTTP {}", what, response->status));
        }
        return std::move(response->body);
    }

    Result<TimedCredentials> fetch() {
        // IMDSv2: a session token first; every other request must carry it.
        auto token_request = request("PUT", "/latest/api/token");
        if (!token_request) {
            return fail(token_request.error());
        }
        token_request->headers.push_back({"X-aws-ec2-metadata-token-ttl-seconds", "21600"});
        auto token = fetch_text(*token_request, "token (PUT /latest/api/token)");
        if (!token) {
            return fail(token.error());
        }
        auto role_request = request("GET", "/latest/meta-data/iam/security-credentials/");
        role_request->headers.push_back({"X-aws-ec2-metadata-token", *token});
        auto roles = fetch_text(*role_request, "role name");
        if (!roles) {
            return fail(roles.error());
        }
        const std::string role = trim(std::string_view(*roles).substr(0, roles->find('\n')));
        if (role.empty()) {
            return no_credentials("instance metadata: the instance has no IAM role");
        }
        auto keys_request = request("GET", "/latest/meta-data/iam/security-credentials/" + role);
        keys_request->headers.push_back({"X-aws-ec2-metadata-token", *token});
        auto keys = fetch_text(*keys_request, "credentials of role " + role);
        if (!keys) {
            return fail(keys.error());
        }
        const auto document = json::parse_object(*keys);
        const auto text = [&](const char* name) {
            return document ? json::text_or_empty(*document, name) : std::string();
        };
        TimedCredentials out;
        out.credentials.access_key_id = text("AccessKeyId");
        out.credentials.secret_access_key = text("SecretAccessKey");
        out.credentials.session_token = text("Token");
        out.expiration = parse_iso8601(text("Expiration"));
        out.source = "instance role " + role;
        if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty() ||
            !out.expiration) {
            return no_credentials(
                fmt::format("instance metadata: the credentials of role {} lack AccessKeyId, "
                            "SecretAccessKey or Expiration",
                            role));
        }
        return out;
    }

    std::shared_ptr<http::Client> http_;
    std::string endpoint_;
    const Clock& clock_;
    std::mutex mutex_;
    std::optional<TimedCredentials> cached_;
};

class CredentialsChain final : public CredentialsProvider {
public:
    explicit CredentialsChain(CredentialsChainOptions options) : options_(std::move(options)) {}

    Result<TimedCredentials> get() override {
        std::shared_ptr<CredentialsProvider> chosen;
        {
            const std::lock_guard lock(mutex_);
            if (!chosen_) {
                auto found = resolve();
                if (!found) {
                    return fail(found.error());
                }
                chosen_ = std::move(*found);
            }
            chosen = chosen_;
        }
        return chosen->get();
    }

private:
    Result<std::shared_ptr<CredentialsProvider>> resolve() {
        std::vector<std::string> tried;
        const auto& env = options_.environment;
        if (options_.explicit_credentials &&
            !options_.explicit_credentials->access_key_id.empty()) {
            return make_static_credentials(*options_.explicit_credentials, "config");
        }
        tried.emplace_back("config: no aws.identifier");

        auto from_env = credentials_from_environment(env);
        if (from_env) {
            return std::shared_ptr<CredentialsProvider>(
                std::make_shared<StaticCredentials>(std::move(*from_env)));
        }
        tried.push_back(from_env.error().message);

        std::filesystem::path file;
        if (auto custom = env("AWS_SHARED_CREDENTIALS_FILE")) {
            file = *custom;
        } else if (auto home = env("HOME")) {
            file = std::filesystem::path(*home) / ".aws" / "credentials";
        }
        const std::string profile = env("AWS_PROFILE").value_or("default");
        if (file.empty()) {
            tried.emplace_back("shared credentials file: HOME is not set");
        } else if (auto from_file = credentials_from_file(file, profile)) {
            return std::shared_ptr<CredentialsProvider>(
                std::make_shared<StaticCredentials>(std::move(*from_file)));
        } else {
            tried.push_back(from_file.error().message);
        }

        if (env("AWS_EC2_METADATA_DISABLED").value_or("") == "true") {
            tried.emplace_back("instance role: AWS_EC2_METADATA_DISABLED=true");
        } else if (!options_.http) {
            tried.emplace_back("instance role: not consulted (no HTTP client)");
        } else {
            const std::string endpoint =
                env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or(options_.imds_endpoint);
            auto role = make_instance_role_credentials(options_.http, endpoint, *options_.clock);
            auto first = role->get();
            if (first) {
                return role;
            }
            tried.push_back(first.error().message);
        }
        std::string message = "no AWS credentials found; tried:";
        for (const auto& reason : tried) {
            message += "\n  " + reason;
        }
        return no_credentials(std::move(message));
    }

    CredentialsChainOptions options_;
    std::mutex mutex_;
    std::shared_ptr<CredentialsProvider> chosen_;
};

} // namespace

std::shared_ptr<CredentialsProvider> make_static_credentials(Credentials credentials,
                                                             std::string source) {
    return std::make_shared<StaticCredentials>(
        TimedCredentials{std::move(credentials), std::nullopt, std::move(source)});
}

EnvironmentLookup process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (value == nullptr) {
            return std::nullopt;
        }
        return std::string(value);
    };
}

Result<TimedCredentials> credentials_from_environment(const EnvironmentLookup& env) {
    auto id = env("AWS_ACCESS_KEY_ID");
    auto secret = env("AWS_SECRET_ACCESS_KEY");
    if (!id || id->empty() || !secret || secret->empty()) {
        return no_credentials(
            "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set");
    }
    TimedCredentials out;
    out.credentials.access_key_id = std::move(*id);
    out.credentials.secret_access_key = std::move(*secret);
    out.credentials.session_token = env("AWS_SESSION_TOKEN").value_or("");
    out.source = "environment";
    return out;
}

Result<TimedCredentials> credentials_from_file(const std::filesystem::path& file,
                                               const std::string& profile) {
    std::ifstream in(file);
    if (!in) {
        return no_credentials(
            fmt::format("shared credentials file {}: cannot be read", file.string()));
    }
    std::string line;
    std::string section;
    bool found = false;
    TimedCredentials out;
    while (std::getline(in, line)) {
        const std::string text = trim(line);
        if (text.empty() || text.front() == '#' || text.front() == ';') {
            continue;
        }
        if (text.front() == '[' && text.back() == ']') {
            section = trim(std::string_view(text).substr(1, text.size() - 2));
            found = found || section == profile;
            continue;
        }
        if (section != profile) {
            continue;
        }
        const auto equals = text.find('=');
        if (equals == std::string::npos) {
            continue;
        }
        const std::string key = trim(std::string_view(text).substr(0, equals));
        const std::string value = trim(std::string_view(text).substr(equals + 1));
        if (key == "aws_access_key_id") {
            out.credentials.access_key_id = value;
        } else if (key == "aws_secret_access_key") {
            out.credentials.secret_access_key = value;
        } else if (key == "aws_session_token") {
            out.credentials.session_token = value;
        }
    }
    if (!found) {
        return no_credentials(
            fmt::format("shared credentials file {}: no profile [{}]", file.string(), profile));
    }
    if (out.credentials.access_key_id.empty() || out.credentials.secret_access_key.empty()) {
        return no_credentials(
            fmt::format("shared credentials file {}: profile [{}] lacks aws_access_key_id or "
                        "aws_secret_access_key",
                        file.string(),
                        profile));
    }
    out.source = fmt::format("profile {} of {}", profile, file.string());
    return out;
}

std::shared_ptr<CredentialsProvider> make_credentials_chain(CredentialsChainOptions options) {
    return std::make_shared<CredentialsChain>(std::move(options));
}

std::shared_ptr<CredentialsProvider> make_instance_role_credentials(
    std::shared_ptr<http::Client> http, std::string endpoint, const Clock& clock) {
    return std::make_shared<InstanceRoleCredentials>(std::move(http), std::move(endpoint), clock);
}

} // namespace ci::aws
