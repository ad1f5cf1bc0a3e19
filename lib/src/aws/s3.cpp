#include "ci/aws/s3.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <sstream>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <pugixml.hpp>

#include <ci/aws/sigv4.h>
#include <ci/core/crypto.h>

#include "aws/endpoint.h"
#include "core/ascii.h"

namespace ci::aws {

namespace {

// Bucket names that can be a DNS label under TLS: lower-case letters, digits and '-', 3 to 63
// characters. Names with dots would break the certificate's wildcard.
bool virtual_host_compatible(std::string_view bucket) {
    if (bucket.size() < 3 || bucket.size() > 63 || bucket.front() == '-' || bucket.back() == '-') {
        return false;
    }
    return std::ranges::all_of(bucket, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

std::string describe(std::string_view method, std::string_view bucket, std::string_view key) {
    return fmt::format("{} s3://{}/{}", method, bucket, key);
}

std::string unquote(std::string text) {
    if (text.size() >= 2 && text.front() == '"' && text.back() == '"') {
        return text.substr(1, text.size() - 2);
    }
    return text;
}

std::uint64_t to_u64(std::string_view text) {
    std::uint64_t value = 0;
    (void)std::from_chars(text.data(), text.data() + text.size(), value);
    return value;
}

// SHA-256 of `size` bytes of `path` from `offset`: a part's payload hash, read in blocks (the
// part itself is never held in memory).
Result<std::string>
sha256_range(const std::string& path, std::uint64_t offset, std::uint64_t size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        return fail(ErrorCode::Io, fmt::format("read {}: {}", path, std::strerror(error)), error);
    }
    crypto::Sha256 hasher;
    std::vector<char> block(std::size_t{256} << 10U);
    while (size > 0) {
        const auto n = ::pread(fd,
                               block.data(),
                               std::min<std::uint64_t>(block.size(), size),
                               static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int error = n < 0 ? errno : 0;
            ::close(fd);
            return fail(ErrorCode::Io,
                        fmt::format("read {}: {}",
                                    path,
                                    n < 0 ? std::strerror(error)
                                          : "the file became shorter while it was sent"),
                        error);
        }
        hasher.update({block.data(), static_cast<std::size_t>(n)});
        offset += static_cast<std::uint64_t>(n);
        size -= static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    return crypto::to_hex(hasher.finish());
}

// An object request with a query ("uploads", "uploadId=...").
Result<http::Request> make_object_request(const S3Endpoint& endpoint,
                                          std::string_view method,
                                          std::string_view bucket,
                                          std::string_view key,
                                          std::string query) {
    if (key.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    describe(method, bucket, key) + ": the key is empty");
    }
    auto request = make_s3_request(endpoint, method, bucket, key);
    if (request) {
        request->query = std::move(query);
    }
    return request;
}

} // namespace

Result<http::Request> make_s3_request(const S3Endpoint& endpoint,
                                      std::string_view method,
                                      std::string_view bucket,
                                      std::string_view key) {
    auto base = detail::parse_endpoint(
        endpoint.endpoint_url.empty() ? fmt::format("https://s3.{}.amazonaws.com", endpoint.region)
                                      : endpoint.endpoint_url);
    if (!base) {
        return fail(base.error());
    }
    if (bucket.empty()) {
        return fail(ErrorCode::InvalidArgument, "S3 request: the bucket name is empty");
    }
    bool path_style = endpoint.addressing == AddressingStyle::Path;
    if (endpoint.addressing == AddressingStyle::Auto) {
        path_style = !endpoint.endpoint_url.empty() || !virtual_host_compatible(bucket);
    }
    http::Request request;
    request.method = std::string(method);
    request.scheme = base->scheme;
    request.host = path_style ? base->host : fmt::format("{}.{}", bucket, base->host);
    request.path = base->path;
    if (path_style) {
        request.path += '/';
        request.path += bucket;
    }
    request.path += '/';
    http::append_uri_encoded(request.path, key, /*keep_slash=*/true);
    return request;
}

Result<http::Request> make_put_object(const S3Endpoint& endpoint, const PutObjectInput& input) {
    if (input.key.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    describe("PUT", input.bucket, input.key) + ": the key is empty");
    }
    auto request = make_s3_request(endpoint, "PUT", input.bucket, input.key);
    if (!request) {
        return request;
    }
    if (!input.content_type.empty()) {
        request->headers.push_back({"Content-Type", input.content_type});
    }
    if (!input.cache_control.empty()) {
        request->headers.push_back({"Cache-Control", input.cache_control});
    }
    if (!input.acl.empty()) {
        request->headers.push_back({"x-amz-acl", input.acl});
    }
    for (const auto& [name, value] : input.metadata) {
        request->headers.push_back({"x-amz-meta-" + name, value});
    }
    request->body = input.body;
    request->body_file = input.body_file;
    return request;
}

Result<http::Request> make_list_objects_v2(const S3Endpoint& endpoint,
                                           std::string_view bucket,
                                           std::string_view prefix,
                                           std::string_view continuation_token,
                                           int max_keys,
                                           std::string_view delimiter) {
    auto request = make_s3_request(endpoint, "GET", bucket, "");
    if (!request) {
        return request;
    }
    std::string& query = request->query;
    query = "list-type=2";
    if (!continuation_token.empty()) {
        query += "&continuation-token=" + http::uri_encode(continuation_token);
    }
    if (!delimiter.empty()) {
        query += "&delimiter=" + http::uri_encode(delimiter);
    }
    query += fmt::format("&max-keys={}", max_keys);
    if (!prefix.empty()) {
        query += "&prefix=" + http::uri_encode(prefix);
    }
    return request;
}

Result<std::vector<PartPlan>> plan_parts(std::uint64_t size, std::uint64_t part_size) {
    if (part_size < min_part_size || part_size > max_part_size) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("a multipart upload's part size must be from {} to {} bytes, "
                                "got {}",
                                min_part_size,
                                max_part_size,
                                part_size));
    }
    const auto limit = static_cast<std::uint64_t>(max_parts);
    if (size > limit * max_part_size) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} bytes is more than S3 takes in one object ({} parts of {} "
                                "bytes)",
                                size,
                                max_parts,
                                max_part_size));
    }
    // Raised in whole MiB until 10,000 parts are enough.
    if ((size + part_size - 1) / part_size > limit) {
        constexpr std::uint64_t mib = 1ULL << 20U;
        part_size = ((size + limit - 1) / limit + mib - 1) / mib * mib;
    }
    std::vector<PartPlan> parts;
    for (std::uint64_t offset = 0; offset < size || parts.empty(); offset += part_size) {
        parts.push_back(PartPlan{
            static_cast<int>(parts.size()) + 1, offset, std::min(part_size, size - offset)});
        if (size == 0) {
            break;
        }
    }
    return parts;
}

Result<http::Request> make_create_multipart_upload(const S3Endpoint& endpoint,
                                                   std::string_view bucket,
                                                   std::string_view key,
                                                   std::string_view content_type) {
    auto request = make_object_request(endpoint, "POST", bucket, key, "uploads");
    if (request && !content_type.empty()) {
        request->headers.push_back({"Content-Type", std::string(content_type)});
    }
    return request;
}

Result<http::Request> make_upload_part(const S3Endpoint& endpoint,
                                       std::string_view bucket,
                                       std::string_view key,
                                       std::string_view upload_id,
                                       const PartPlan& part,
                                       const std::string& file) {
    if (part.number < 1 || part.number > max_parts) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: part number {} is not from 1 to {}",
                                describe("PUT", bucket, key),
                                part.number,
                                max_parts));
    }
    auto request = make_object_request(
        endpoint,
        "PUT",
        bucket,
        key,
        fmt::format("partNumber={}&uploadId={}", part.number, http::uri_encode(upload_id)));
    if (request) {
        request->body_file = file;
        request->body_offset = part.offset;
        request->body_size = part.size;
    }
    return request;
}

Result<http::Request> make_complete_multipart_upload(const S3Endpoint& endpoint,
                                                     std::string_view bucket,
                                                     std::string_view key,
                                                     std::string_view upload_id,
                                                     const std::vector<UploadedPart>& parts) {
    auto request = make_object_request(
        endpoint, "POST", bucket, key, "uploadId=" + http::uri_encode(upload_id));
    if (!request) {
        return request;
    }
    pugi::xml_document document;
    auto root = document.append_child("CompleteMultipartUpload");
    root.append_attribute("xmlns") = "http://s3.amazonaws.com/doc/2006-03-01/";
    for (const auto& part : parts) {
        auto node = root.append_child("Part");
        node.append_child("PartNumber").text() = part.number;
        node.append_child("ETag").text() = ('"' + part.etag + '"').c_str();
    }
    std::ostringstream body;
    document.save(body, "", pugi::format_raw);
    request->body = body.str();
    request->headers.push_back({"Content-Type", "application/xml"});
    return request;
}

Result<http::Request> make_abort_multipart_upload(const S3Endpoint& endpoint,
                                                  std::string_view bucket,
                                                  std::string_view key,
                                                  std::string_view upload_id) {
    return make_object_request(
        endpoint, "DELETE", bucket, key, "uploadId=" + http::uri_encode(upload_id));
}

Result<std::string> parse_initiate_multipart_upload(std::string_view xml) {
    pugi::xml_document document;
    const auto parsed = document.load_buffer(xml.data(), xml.size());
    const std::string id = document.child("InitiateMultipartUploadResult").child_value("UploadId");
    if (!parsed || id.empty()) {
        return fail(ErrorCode::AwsService,
                    "CreateMultipartUpload: the answer is not an InitiateMultipartUploadResult "
                    "with an UploadId");
    }
    return id;
}

Status parse_complete_multipart_upload(std::string_view what, const http::Response& response) {
    if (response.status / 100 != 2) {
        return fail(s3_error(what, response));
    }
    // As the AWS SDKs do: an Error document is a failure, any other document a success (S3
    // answers CompleteMultipartUploadResult; moto 5 CompleteMultipartUploadResponse).
    pugi::xml_document document;
    const auto parsed = document.load_buffer(response.body.data(), response.body.size());
    if (parsed && !document.child("Error").empty()) {
        return fail(s3_error(what, response));
    }
    if (!parsed || document.document_element().empty()) {
        return fail(ErrorCode::AwsService,
                    fmt::format("{}: {} but the answer is not an XML document ({} bytes)",
                                what,
                                response.status,
                                response.body.size()));
    }
    return {};
}

Result<ListObjectsPage> parse_list_objects_v2(std::string_view xml) {
    pugi::xml_document document;
    const auto parsed = document.load_buffer(xml.data(), xml.size());
    const auto root = document.child("ListBucketResult");
    if (!parsed || !root) {
        return fail(ErrorCode::AwsService,
                    fmt::format("ListObjectsV2: the answer is not a ListBucketResult ({})",
                                parsed ? "another document" : parsed.description()));
    }
    ListObjectsPage page;
    for (const auto contents : root.children("Contents")) {
        ObjectSummary object;
        object.key = contents.child_value("Key");
        object.size = to_u64(contents.child_value("Size"));
        object.etag = unquote(contents.child_value("ETag"));
        object.last_modified = contents.child_value("LastModified");
        page.objects.push_back(std::move(object));
    }
    for (const auto prefix : root.children("CommonPrefixes")) {
        page.common_prefixes.emplace_back(prefix.child_value("Prefix"));
    }
    page.truncated = std::string_view(root.child_value("IsTruncated")) == "true";
    page.next_continuation_token = root.child_value("NextContinuationToken");
    if (page.truncated && page.next_continuation_token.empty()) {
        return fail(ErrorCode::AwsService,
                    "ListObjectsV2: a truncated page without NextContinuationToken");
    }
    return page;
}

ObjectHead parse_object_head(const http::Response& response) {
    ObjectHead head;
    for (const auto& header : response.headers) {
        const std::string name = ascii_lower(header.name);
        if (name == "content-length") {
            head.size = to_u64(header.value);
        } else if (name == "etag") {
            head.etag = unquote(header.value);
        } else if (name == "content-type") {
            head.content_type = header.value;
        } else if (name == "cache-control") {
            head.cache_control = header.value;
        } else if (name.starts_with("x-amz-meta-")) {
            head.metadata.emplace(name.substr(11), header.value);
        }
    }
    return head;
}

Error s3_error(std::string_view what, const http::Response& response) {
    return detail::aws_error(what, response, detail::ErrorFormat::S3);
}

S3Client::S3Client(std::shared_ptr<http::Client> http,
                   std::shared_ptr<CredentialsProvider> credentials,
                   const Clock& clock,
                   S3Endpoint endpoint)
    : http_(std::move(http)), credentials_(std::move(credentials)), clock_(clock),
      endpoint_(std::move(endpoint)) {}

Result<http::Response> S3Client::send(http::Request request, std::string payload_hash) {
    auto credentials = credentials_->get();
    if (!credentials) {
        return fail(credentials.error());
    }
    SigningParams params;
    params.region = endpoint_.region;
    params.service = "s3";
    params.time = clock_.now();
    params.normalize_path = false;
    params.double_uri_encode = false;
    params.add_content_sha256_header = true;
    params.payload_hash = std::move(payload_hash);
    auto signature = sign(request, credentials->credentials, params);
    if (!signature) {
        return fail(signature.error());
    }
    return http_->send(apply(std::move(request), *signature));
}

Result<std::optional<http::Response>> S3Client::exchange(Result<http::Request> request,
                                                         std::string payload_hash,
                                                         const std::string& what,
                                                         bool missing_is_outcome) {
    if (!request) {
        return fail(request.error());
    }
    auto response = send(std::move(*request), std::move(payload_hash));
    if (!response) {
        return fail(response.error().with_context(what));
    }
    if (missing_is_outcome && response->status == 404) {
        return std::optional<http::Response>();
    }
    if (response->status / 100 != 2) {
        return fail(s3_error(what, *response));
    }
    return std::optional<http::Response>(std::move(*response));
}

Status S3Client::put_object(const PutObjectInput& input) {
    const std::string what = describe("PUT", input.bucket, input.key);
    std::string payload_hash;
    if (!input.body_file.empty()) {
        // Hashed once here; the client then streams the file without holding it in memory.
        auto digest = crypto::sha256_file(input.body_file);
        if (!digest) {
            return fail(digest.error().with_context(what));
        }
        payload_hash = crypto::to_hex(*digest);
    }
    auto response = exchange(make_put_object(endpoint_, input), std::move(payload_hash), what);
    if (!response) {
        return fail(response.error());
    }
    return {};
}

Result<UploadFileResult> S3Client::upload_file(const UploadFileInput& input) {
    const std::string what = describe("PUT", input.bucket, input.key);
    std::error_code error;
    const auto size = std::filesystem::file_size(input.path, error);
    if (error) {
        return fail(ErrorCode::Io, fmt::format("{}: {}: {}", what, input.path, error.message()));
    }
    const auto stopped = [&](std::uint64_t sent) {
        return input.progress && !input.progress(sent);
    };
    if (size <= input.part_size) {
        PutObjectInput put;
        put.bucket = input.bucket;
        put.key = input.key;
        put.body_file = input.path;
        put.content_type = input.content_type;
        if (auto status = put_object(put); !status) {
            return fail(status.error());
        }
        if (stopped(size)) {
            return fail(ErrorCode::Cancelled, what + ": stopped");
        }
        return UploadFileResult{size, 0};
    }
    auto plan = plan_parts(size, input.part_size);
    if (!plan) {
        return fail(plan.error().with_context(what));
    }
    auto created = exchange(
        make_create_multipart_upload(endpoint_, input.bucket, input.key, input.content_type),
        {},
        describe("POST", input.bucket, input.key) + " (CreateMultipartUpload)");
    if (!created) {
        return fail(created.error());
    }
    auto upload_id = parse_initiate_multipart_upload((*created)->body);
    if (!upload_id) {
        return fail(upload_id.error().with_context(what));
    }
    // From here on a failure aborts the upload, so that S3 does not keep (and bill) its parts.
    const auto abort = [&](Error cause) -> Result<UploadFileResult> {
        auto aborted =
            exchange(make_abort_multipart_upload(endpoint_, input.bucket, input.key, *upload_id),
                     {},
                     describe("DELETE", input.bucket, input.key) + " (AbortMultipartUpload)");
        if (!aborted) {
            cause.message += fmt::format(" (and aborting the multipart upload failed: {})",
                                         aborted.error().message);
        }
        return fail(std::move(cause));
    };
    std::vector<UploadedPart> parts;
    parts.reserve(plan->size());
    std::uint64_t sent = 0;
    for (const auto& part : *plan) {
        const std::string part_what =
            fmt::format("{} part {} of {}", what, part.number, plan->size());
        auto hash = sha256_range(input.path, part.offset, part.size);
        if (!hash) {
            return abort(hash.error().with_context(part_what));
        }
        auto response = exchange(
            make_upload_part(endpoint_, input.bucket, input.key, *upload_id, part, input.path),
            std::move(*hash),
            part_what);
        if (!response) {
            return abort(response.error());
        }
        const std::string* etag = (*response)->header("ETag");
        if (etag == nullptr || etag->empty()) {
            return abort(Error{ErrorCode::AwsService, part_what + ": the answer has no ETag", {}});
        }
        parts.push_back(UploadedPart{part.number, unquote(*etag)});
        sent += part.size;
        if (stopped(sent)) {
            return abort(Error{ErrorCode::Cancelled, what + ": stopped", {}});
        }
    }
    const std::string complete_what =
        describe("POST", input.bucket, input.key) + " (CompleteMultipartUpload)";
    auto completed = exchange(
        make_complete_multipart_upload(endpoint_, input.bucket, input.key, *upload_id, parts),
        {},
        complete_what);
    if (!completed) {
        return abort(completed.error());
    }
    if (auto status = parse_complete_multipart_upload(complete_what, **completed); !status) {
        return abort(status.error());
    }
    return UploadFileResult{size, static_cast<int>(parts.size())};
}

Result<std::optional<Object>> S3Client::get_object(std::string_view bucket, std::string_view key) {
    auto response = exchange(make_s3_request(endpoint_, "GET", bucket, key),
                             {},
                             describe("GET", bucket, key),
                             /*missing_is_outcome=*/true);
    if (!response) {
        return fail(response.error());
    }
    if (!*response) {
        return std::optional<Object>();
    }
    auto& found = **response;
    return std::optional<Object>(Object{parse_object_head(found), std::move(found.body)});
}

Result<std::optional<ObjectHead>> S3Client::head_object(std::string_view bucket,
                                                        std::string_view key) {
    auto response = exchange(make_s3_request(endpoint_, "HEAD", bucket, key),
                             {},
                             describe("HEAD", bucket, key),
                             /*missing_is_outcome=*/true);
    if (!response) {
        return fail(response.error());
    }
    if (!*response) {
        return std::optional<ObjectHead>();
    }
    return std::optional<ObjectHead>(parse_object_head(**response));
}

Status S3Client::delete_object(std::string_view bucket, std::string_view key) {
    auto response = exchange(
        make_s3_request(endpoint_, "DELETE", bucket, key), {}, describe("DELETE", bucket, key));
    if (!response) {
        return fail(response.error());
    }
    return {};
}

Result<ListObjectsPage> S3Client::list_objects_page(std::string_view bucket,
                                                    std::string_view prefix,
                                                    std::string_view continuation_token,
                                                    int max_keys) {
    const std::string what = fmt::format("LIST s3://{}/{}", bucket, prefix);
    auto response = exchange(
        make_list_objects_v2(endpoint_, bucket, prefix, continuation_token, max_keys), {}, what);
    if (!response) {
        return fail(response.error());
    }
    auto page = parse_list_objects_v2((*response)->body);
    if (!page) {
        return fail(page.error().with_context(what));
    }
    return page;
}

Result<std::vector<ObjectSummary>> S3Client::list_objects(std::string_view bucket,
                                                          std::string_view prefix) {
    std::vector<ObjectSummary> objects;
    std::string token;
    do {
        auto page = list_objects_page(bucket, prefix, token);
        if (!page) {
            return fail(page.error());
        }
        std::ranges::move(page->objects, std::back_inserter(objects));
        token = page->truncated ? page->next_continuation_token : std::string();
    } while (!token.empty());
    return objects;
}

Status S3Client::create_bucket(std::string_view bucket) {
    auto request = make_s3_request(endpoint_, "PUT", bucket, "");
    // Outside us-east-1, S3 wants the region in the body.
    if (request && endpoint_.region != "us-east-1") {
        request->body = fmt::format(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            endpoint_.region);
    }
    auto response = exchange(std::move(request), {}, fmt::format("CREATE BUCKET s3://{}", bucket));
    if (!response) {
        return fail(response.error());
    }
    return {};
}

} // namespace ci::aws
