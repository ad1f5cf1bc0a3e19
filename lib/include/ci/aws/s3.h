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

/// One part of a multipart upload: its number (1 to 10,000) and where it is in the file.
struct PartPlan {
    int number = 0;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
    friend bool operator==(const PartPlan&, const PartPlan&) = default;
};

/// A part S3 has stored: its number and the ETag UploadPart answered (without quotes).
struct UploadedPart {
    int number = 0;
    std::string etag;
    friend bool operator==(const UploadedPart&, const UploadedPart&) = default;
};

/// S3's limits on multipart uploads.
inline constexpr std::uint64_t min_part_size = 5ULL << 20U; ///< every part but the last
inline constexpr std::uint64_t max_part_size = 5ULL << 30U;
inline constexpr int max_parts = 10000;
/// The part size upload_file uses unless told otherwise (files up to it go in one PUT).
inline constexpr std::uint64_t default_part_size = 8ULL << 20U;

/// What upload_file sends: a file from disk, in one PUT up to `part_size` bytes, else as a
/// multipart upload of parts of `part_size` bytes (more when the file would need more than
/// 10,000 parts), each streamed from the file: memory stays bounded by curl's buffers, whatever
/// the file's size.
struct UploadFileInput {
    std::string bucket;
    std::string key;
    std::string path; ///< the file
    std::string content_type;
    std::uint64_t part_size = default_part_size; ///< at least min_part_size
    /// Called after each PUT (a whole small file, or a part) with the bytes of the file sent so
    /// far; returning false stops the upload (Cancelled; a multipart upload is aborted).
    std::function<bool(std::uint64_t sent)> progress;
};

/// How upload_file sent a file.
struct UploadFileResult {
    std::uint64_t size = 0;
    int parts = 0; ///< 0: a single PUT
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

/// The parts of a file of `size` bytes in parts of `part_size` (raised so that there are at most
/// 10,000): numbered from 1, the last one shorter. InvalidArgument for a part_size below
/// min_part_size or above max_part_size, or a file too large for 10,000 parts of the maximum.
[[nodiscard]] Result<std::vector<PartPlan>> plan_parts(std::uint64_t size, std::uint64_t part_size);
/// CreateMultipartUpload: POST /key?uploads, with the object's content type.
[[nodiscard]] Result<http::Request> make_create_multipart_upload(const S3Endpoint& endpoint,
                                                                 std::string_view bucket,
                                                                 std::string_view key,
                                                                 std::string_view content_type);
/// UploadPart: PUT /key?partNumber=N&uploadId=ID whose body is `part` of `file` (streamed).
[[nodiscard]] Result<http::Request> make_upload_part(const S3Endpoint& endpoint,
                                                     std::string_view bucket,
                                                     std::string_view key,
                                                     std::string_view upload_id,
                                                     const PartPlan& part,
                                                     const std::string& file);
/// CompleteMultipartUpload: POST /key?uploadId=ID with the list of parts (number and ETag, in
/// order) as its XML body.
[[nodiscard]] Result<http::Request>
make_complete_multipart_upload(const S3Endpoint& endpoint,
                               std::string_view bucket,
                               std::string_view key,
                               std::string_view upload_id,
                               const std::vector<UploadedPart>& parts);
/// AbortMultipartUpload: DELETE /key?uploadId=ID.
[[nodiscard]] Result<http::Request> make_abort_multipart_upload(const S3Endpoint& endpoint,
                                                                std::string_view bucket,
                                                                std::string_view key,
                                                                std::string_view upload_id);

// Pure parsers.

/// The UploadId of an InitiateMultipartUploadResult document; AwsService when there is none.
[[nodiscard]] Result<std::string> parse_initiate_multipart_upload(std::string_view xml);
/// A CompleteMultipartUpload answer: S3 may answer 200 and still fail, with an Error document
/// in the body (e.g. InternalError after a long assembly). An Error document is the Error for
/// `what` ("<what>: 200 <Code>: ..."), a body that is no XML document an AwsService error, any
/// other document (CompleteMultipartUploadResult) success.
[[nodiscard]] Status parse_complete_multipart_upload(std::string_view what,
                                                     const http::Response& response);

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
    /// Uploads a file: one PUT up to input.part_size bytes, else a multipart upload
    /// (CreateMultipartUpload, UploadPart for each part, CompleteMultipartUpload; on any failure
    /// or a stop, AbortMultipartUpload, so that S3 keeps no parts). Each PUT's payload is hashed
    /// from the file, then streamed from it. Errors name the request ("PUT s3://b/k part 3 of
    /// 25: 503 SlowDown: ...").
    [[nodiscard]] Result<UploadFileResult> upload_file(const UploadFileInput& input);
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
