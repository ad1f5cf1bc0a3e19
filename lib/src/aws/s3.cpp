#include "ci/aws/s3.h"

#include <algorithm>
#include <charconv>
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
