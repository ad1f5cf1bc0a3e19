// S3's pure parts: request builders and response parsers.

#include <string>

#include <doctest/doctest.h>

#include <ci/aws/s3.h>

#include "aws/endpoint.h"
#include "support/require_ok.h"

using ci::aws::AddressingStyle;
using ci::aws::S3Endpoint;

TEST_CASE("s3: URLs in virtual-hosted and path style, with encoded keys") {
    SUBCASE("AWS, virtual-hosted") {
        auto request = ci::aws::make_s3_request(S3Endpoint{"us-west-2", "", AddressingStyle::Auto},
                                                "GET",
                                                "clusterhq-wheelhouse",
                                                "fedora20-x86_64/Flocker 1.0+doc1.whl");
        REQUIRE_OK(request);
        CHECK(request->url() == "https://clusterhq-wheelhouse.s3.us-west-2.amazonaws.com/"
                                "fedora20-x86_64/Flocker%201.0%2Bdoc1.whl");
    }
    SUBCASE("a bucket with dots falls back to path style") {
        auto request = ci::aws::make_s3_request(
            S3Endpoint{"eu-west-1", "", AddressingStyle::Auto}, "GET", "my.bucket", "k");
        REQUIRE_OK(request);
        CHECK(request->url() == "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
    }
    SUBCASE("an endpoint override is path style, like the AWS CLI's --endpoint-url") {
        auto request = ci::aws::make_s3_request(
            S3Endpoint{"us-east-1", "http://127.0.0.1:4569/", AddressingStyle::Auto},
            "PUT",
            "wheels",
            "a/b.whl");
        REQUIRE_OK(request);
        CHECK(request->scheme == "http");
        CHECK(request->host == "127.0.0.1:4569");
        CHECK(request->path == "/wheels/a/b.whl");
    }
    SUBCASE("forced styles") {
        auto path = ci::aws::make_s3_request(
            S3Endpoint{"us-east-1", "", AddressingStyle::Path}, "GET", "bucket", "k");
        REQUIRE_OK(path);
        CHECK(path->url() == "https://s3.us-east-1.amazonaws.com/bucket/k");
        auto virtual_host = ci::aws::make_s3_request(
            S3Endpoint{"us-east-1", "http://minio:9000", AddressingStyle::Virtual},
            "GET",
            "bucket",
            "k");
        REQUIRE_OK(virtual_host);
        CHECK(virtual_host->url() == "http://bucket.minio:9000/k");
    }
    SUBCASE("bad endpoints and buckets are refused") {
        CHECK_FALSE(ci::aws::make_s3_request(S3Endpoint{"r", "ftp://x", {}}, "GET", "b", "k"));
        CHECK_FALSE(ci::aws::make_s3_request(S3Endpoint{"r", "http://x?y", {}}, "GET", "b", "k"));
        CHECK_FALSE(ci::aws::make_s3_request(S3Endpoint{"r", "", {}}, "GET", "", "k"));
    }
}

TEST_CASE("s3: PutObject carries content type, ACL, cache control and metadata") {
    ci::aws::PutObjectInput input;
    input.bucket = "wheels";
    input.key = "pkg-1.0-py3-none-any.whl";
    input.body = "zip";
    input.content_type = "application/python+wheel";
    input.acl = "public-read";
    input.cache_control = "max-age=300";
    input.metadata = {{"sha256", "abc"}};
    auto request = ci::aws::make_put_object(S3Endpoint{"us-east-1", "http://h:1", {}}, input);
    REQUIRE_OK(request);
    CHECK(request->method == "PUT");
    CHECK(request->body == "zip");
    CHECK(*ci::http::find_header(request->headers, "content-type") == "application/python+wheel");
    CHECK(*ci::http::find_header(request->headers, "x-amz-acl") == "public-read");
    CHECK(*ci::http::find_header(request->headers, "cache-control") == "max-age=300");
    CHECK(*ci::http::find_header(request->headers, "x-amz-meta-sha256") == "abc");
    input.key.clear();
    CHECK_FALSE(ci::aws::make_put_object(S3Endpoint{}, input).has_value());
}

TEST_CASE("s3: ListObjectsV2 requests and pages") {
    auto request = ci::aws::make_list_objects_v2(
        S3Endpoint{"us-east-1", "http://h:1", {}}, "wheels", "fedora/", "tok+en/=", 500, "/");
    REQUIRE_OK(request);
    CHECK(request->path == "/wheels/");
    CHECK(request->query == "list-type=2&continuation-token=tok%2Ben%2F%3D&delimiter=%2F&max-keys="
                            "500&prefix=fedora%2F");

    const std::string xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>wheels</Name><Prefix>fedora/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
  <Contents><Key>fedora/a-1.0-py3-none-any.whl</Key><LastModified>2026-11-24T10:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1024</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>fedora/index</Key><LastModified>2026-11-24T10:00:01.000Z</LastModified>
    <ETag>"d41d8cd98f00b204e9800998ecf8427e"</ETag><Size>0</Size></Contents>
  <CommonPrefixes><Prefix>fedora/simple/</Prefix></CommonPrefixes>
</ListBucketResult>)";
    auto page = ci::aws::parse_list_objects_v2(xml);
    REQUIRE_OK(page);
    REQUIRE(page->objects.size() == 2);
    CHECK(page->objects[0] == ci::aws::ObjectSummary{"fedora/a-1.0-py3-none-any.whl",
                                                     1024,
                                                     "9b2cf535f27731c974343645a3985328",
                                                     "2026-11-24T10:00:00.000Z"});
    CHECK(page->objects[1].size == 0);
    CHECK(page->truncated);
    CHECK(page->next_continuation_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    CHECK(page->common_prefixes == std::vector<std::string>{"fedora/simple/"});

    CHECK_FALSE(ci::aws::parse_list_objects_v2("<Error/>").has_value());
    CHECK_FALSE(ci::aws::parse_list_objects_v2("not xml <").has_value());
    CHECK_FALSE(ci::aws::parse_list_objects_v2(
                    "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
                    .has_value());
}

TEST_CASE("s3: object heads and errors from responses") {
    ci::http::Response response;
    response.status = 200;
    response.headers = {{"Content-Length", "42"},
                        {"ETag", "\"abc\""},
                        {"Content-Type", "text/html"},
                        {"x-amz-meta-SHA256", "ff00"},
                        {"Cache-Control", "no-cache"}};
    const auto head = ci::aws::parse_object_head(response);
    CHECK(head.size == 42);
    CHECK(head.etag == "abc");
    CHECK(head.content_type == "text/html");
    CHECK(head.cache_control == "no-cache");
    CHECK(head.metadata == std::map<std::string, std::string>{{"sha256", "ff00"}});

    ci::http::Response denied;
    denied.status = 403;
    denied.body = R"(<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>)";
    const auto error = ci::aws::s3_error("PUT s3://b/k", denied);
    CHECK(error.code == ci::ErrorCode::AwsService);
    CHECK(error.message == "PUT s3://b/k: 403 SignatureDoesNotMatch: The request signature we "
                           "calculated does not match the signature you provided. (request id "
                           "4442587FB7D0A2F9)");
    CHECK(error.native == 403);

    ci::http::Response head_denied;
    head_denied.status = 403;
    head_denied.headers = {{"x-amz-request-id", "R1"}};
    CHECK(ci::aws::s3_error("HEAD s3://b/k", head_denied).message ==
          "HEAD s3://b/k: 403 Forbidden (request id R1)");
}
