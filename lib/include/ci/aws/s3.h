#pragma once

/// \file
/// Amazon S3: request builders and response parsers (pure), and S3Client, which composes
/// build -> sign -> send -> parse with an injected HTTP client, credentials and clock.
///
/// Outcomes are values: a missing object is `std::nullopt`, not an error. Errors (ErrorCode::
/// AwsService) say what was done to what and what S3 answered:
/// `PUT s3://bucket/key: 403 SignatureDoesNotMatch: The request signature we calculated does not
/// match the signature you provided. (request id 4442587FB7D0A2F9)`.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/aws/credentials.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/http/client.h>
#include <ci/http/request.h>

namespace ci::aws {

/// How bucket names go into URLs.
enum class AddressingStyle {
    Auto,    ///< virtual-hosted on AWS; path-style with an endpoint override (local servers)
    Path,    ///< https://endpoint/bucket/key
    Virtual, ///< https://bucket.endpoint/key
};

/// Where S3 is.
struct S3Endpoint {
    std::string region = "us-east-1";
    /// Like the AWS CLI's --endpoint-url: "http://127.0.0.1:9000". Empty: AWS's own endpoint for
    /// the region (https://s3.<region>.amazonaws.com).
    std::string endpoint_url;
    AddressingStyle addressing = AddressingStyle::Auto;
};

/// One object of a listing.
struct ObjectSummary {
    std::string key;
    std::uint64_t size = 0;
    std::string etag;          ///< without the quotes
    std::string last_modified; ///< as S3 writes it (ISO 8601)
    friend bool operator==(const ObjectSummary&, const ObjectSummary&) = default;
};

/// One page of ListObjectsV2.
struct ListObjectsPage {
    std::vector<ObjectSummary> objects;
    std::vector<std::string> common_prefixes;
    bool truncated = false;
    std::string next_continuation_token;
};

/// What HeadObject (and GetObject) tell about an object.
struct ObjectHead {
    std::uint64_t size = 0;
    std::string etag; ///< without the quotes
    std::string content_type;
    std::string cache_control;
    std::map<std::string, std::string> metadata; ///< x-amz-meta-* headers, names lower-cased
};

/// An object's content and what its headers said.
struct Object {
    ObjectHead head;
    std::string body;
};

/// What PutObject sends.
struct PutObjectInput {
    std::string bucket;
    std::string key;
    std::string body;      ///< or:
    std::string body_file; ///< streamed from this file; its hash is computed once, before sending
    std::string content_type;
    std::string acl; ///< x-amz-acl, e.g. "public-read"; empty sends none
    std::string cache_control;
    std::map<std::string, std::string> metadata; ///< sent as x-amz-meta-<name>
};

// Pure builders: requests not yet signed. Keys are encoded here (every byte but unreserved ones
// and '/').

/// The base URL parts for `bucket` at `endpoint`: scheme, host and path prefix.
[[nodiscard]] Result<http::Request> make_s3_request(const S3Endpoint& endpoint,
                                                    std::string_view method,
                                                    std::string_view bucket,
                                                    std::string_view key);
[[nodiscard]] Result<http::Request> make_put_object(const S3Endpoint& endpoint,
                                                    const PutObjectInput& input);
/// ListObjectsV2 for one page; `continuation_token` empty for the first.
[[nodiscard]] Result<http::Request> make_list_objects_v2(const S3Endpoint& endpoint,
                                                         std::string_view bucket,
                                                         std::string_view prefix,
                                                         std::string_view continuation_token,
                                                         int max_keys = 1000,
                                                         std::string_view delimiter = {});

// Pure parsers.

/// A ListObjectsV2 result document. Fails with AwsService when it is not one.
[[nodiscard]] Result<ListObjectsPage> parse_list_objects_v2(std::string_view xml);
/// What a HeadObject or GetObject response's headers say.
[[nodiscard]] ObjectHead parse_object_head(const http::Response& response);
/// The Error for a failed response: "<what>: <status> <Code>: <Message> (request id <id>)".
/// Works for an empty body (HEAD) too.
[[nodiscard]] Error s3_error(std::string_view what, const http::Response& response);

/// S3 through an HTTP client. Thread-safe if its parts are.
class S3Client {
public:
    S3Client(std::shared_ptr<http::Client> http,
             std::shared_ptr<CredentialsProvider> credentials,
             const Clock& clock,
             S3Endpoint endpoint);

    /// Uploads an object. A body_file is hashed once, then streamed.
    [[nodiscard]] Status put_object(const PutObjectInput& input);
    /// The object, or nullopt when there is none.
    [[nodiscard]] Result<std::optional<Object>> get_object(std::string_view bucket,
                                                           std::string_view key);
    /// The object's head, or nullopt when there is none.
    [[nodiscard]] Result<std::optional<ObjectHead>> head_object(std::string_view bucket,
                                                                std::string_view key);
    /// Deletes an object; deleting a missing one succeeds (S3 says 204 either way).
    [[nodiscard]] Status delete_object(std::string_view bucket, std::string_view key);
    /// One page of ListObjectsV2.
    [[nodiscard]] Result<ListObjectsPage> list_objects_page(std::string_view bucket,
                                                            std::string_view prefix,
                                                            std::string_view continuation_token,
                                                            int max_keys = 1000);
    /// Every object under `prefix`, following continuation tokens.
    [[nodiscard]] Result<std::vector<ObjectSummary>> list_objects(std::string_view bucket,
                                                                  std::string_view prefix);
    /// Creates a bucket (tests and local servers).
    [[nodiscard]] Status create_bucket(std::string_view bucket);

private:
    Result<http::Response> send(http::Request request, std::string payload_hash);
    // Builds, signs, sends: transport errors and non-2xx answers become Errors naming `what`;
    // a 404 is nullopt when `missing_is_outcome`.
    Result<std::optional<http::Response>> exchange(Result<http::Request> request,
                                                   std::string payload_hash,
                                                   const std::string& what,
                                                   bool missing_is_outcome = false);

    std::shared_ptr<http::Client> http_;
    std::shared_ptr<CredentialsProvider> credentials_;
    const Clock& clock_;
    S3Endpoint endpoint_;
};

} // namespace ci::aws
