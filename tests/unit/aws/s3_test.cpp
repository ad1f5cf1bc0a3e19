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

TEST_CASE("s3: multipart parts are planned within S3's limits") {
    constexpr std::uint64_t mib = 1ULL << 20U;
    auto parts = ci::aws::plan_parts(20 * mib + 1, 8 * mib);
    REQUIRE_OK(parts);
    REQUIRE(parts->size() == 3);
    CHECK((*parts)[0] == ci::aws::PartPlan{1, 0, 8 * mib});
    CHECK((*parts)[1] == ci::aws::PartPlan{2, 8 * mib, 8 * mib});
    CHECK((*parts)[2] == ci::aws::PartPlan{3, 16 * mib, 4 * mib + 1});

    auto exact = ci::aws::plan_parts(16 * mib, 8 * mib);
    REQUIRE_OK(exact);
    CHECK(exact->size() == 2);
    CHECK(exact->back().size == 8 * mib);

    SUBCASE("a file that would need more than 10,000 parts gets larger parts") {
        const std::uint64_t size = 100'000 * mib; // ~98 GiB: 12,500 parts of 8 MiB
        auto big = ci::aws::plan_parts(size, 8 * mib);
        REQUIRE_OK(big);
        CHECK(big->size() <= 10'000);
        CHECK(big->front().size == 10 * mib);
        std::uint64_t total = 0;
        bool contiguous = true;
        for (std::size_t i = 0; i < big->size(); ++i) {
            contiguous = contiguous && (*big)[i].number == static_cast<int>(i) + 1 &&
                         (*big)[i].offset == total;
            total += (*big)[i].size;
        }
        CHECK(contiguous);
        CHECK(total == size);
    }
    SUBCASE("sizes S3 refuses") {
        CHECK(ci::aws::plan_parts(10 * mib, 5 * mib - 1).error().code ==
              ci::ErrorCode::InvalidArgument);
        CHECK_FALSE(ci::aws::plan_parts(10 * mib, (5ULL << 30U) + 1).has_value());
        auto huge = ci::aws::plan_parts(10'000 * (5ULL << 30U) + 1, 8 * mib);
        REQUIRE_FALSE(huge.has_value());
        CHECK(huge.error().message.find("more than S3 takes") != std::string::npos);
    }
}

TEST_CASE("s3: multipart requests") {
    const S3Endpoint endpoint{"us-east-1", "http://h:1", {}};
    auto create = ci::aws::make_create_multipart_upload(endpoint, "b", "dir/big file", "text/x");
    REQUIRE_OK(create);
    CHECK(create->method == "POST");
    CHECK(create->path == "/b/dir/big%20file");
    CHECK(create->query == "uploads");
    CHECK(*ci::http::find_header(create->headers, "content-type") == "text/x");

    auto part = ci::aws::make_upload_part(
        endpoint, "b", "k", "id/with+signs", ci::aws::PartPlan{3, 100, 50}, "/tmp/f");
    REQUIRE_OK(part);
    CHECK(part->method == "PUT");
    CHECK(part->query == "partNumber=3&uploadId=id%2Fwith%2Bsigns");
    CHECK(part->body_file == "/tmp/f");
    CHECK(part->body_offset == 100);
    CHECK(part->body_size == 50);
    CHECK_FALSE(ci::aws::make_upload_part(endpoint, "b", "k", "i", {0, 0, 1}, "/f").has_value());
    CHECK_FALSE(
        ci::aws::make_upload_part(endpoint, "b", "k", "i", {10'001, 0, 1}, "/f").has_value());

    auto complete =
        ci::aws::make_complete_multipart_upload(endpoint, "b", "k", "ID", {{1, "aa"}, {2, "b<&>"}});
    REQUIRE_OK(complete);
    CHECK(complete->method == "POST");
    CHECK(complete->query == "uploadId=ID");
    CHECK(complete->body ==
          "<?xml version=\"1.0\"?><CompleteMultipartUpload "
          "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Part><PartNumber>1</PartNumber>"
          "<ETag>\"aa\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"b&lt;&amp;&gt;\""
          "</ETag></Part></CompleteMultipartUpload>");

    auto abort = ci::aws::make_abort_multipart_upload(endpoint, "b", "k", "ID");
    REQUIRE_OK(abort);
    CHECK(abort->method == "DELETE");
    CHECK(abort->query == "uploadId=ID");
    CHECK(abort->body.empty());

    CHECK_FALSE(ci::aws::make_create_multipart_upload(endpoint, "b", "", "").has_value());
    CHECK_FALSE(ci::aws::make_abort_multipart_upload(endpoint, "", "k", "ID").has_value());
}

TEST_CASE("s3: multipart answers") {
    auto id = ci::aws::parse_initiate_multipart_upload(
        R"(<?xml version="1.0" encoding="UTF-8"?>
<InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE</UploadId>
</InitiateMultipartUploadResult>)");
    REQUIRE_OK(id);
    CHECK(*id == "VXBsb2FkIElE");
    CHECK_FALSE(ci::aws::parse_initiate_multipart_upload("<Error/>").has_value());
    CHECK_FALSE(ci::aws::parse_initiate_multipart_upload(
                    "<InitiateMultipartUploadResult><UploadId/></InitiateMultipartUploadResult>")
                    .has_value());
    CHECK_FALSE(ci::aws::parse_initiate_multipart_upload("<<<").has_value());

    ci::http::Response done;
    done.status = 200;
    done.body = "<CompleteMultipartUploadResult><ETag>\"x-3\"</ETag>"
                "</CompleteMultipartUploadResult>";
    CHECK(ci::aws::parse_complete_multipart_upload("POST s3://b/k", done).has_value());

    SUBCASE("a 200 whose body is an Error is a failure naming S3's code") {
        ci::http::Response failed;
        failed.status = 200;
        failed.body = "<Error><Code>InternalError</Code><Message>We encountered an internal "
                      "error.</Message><RequestId>R1</RequestId></Error>";
        auto status = ci::aws::parse_complete_multipart_upload("POST s3://b/k", failed);
        REQUIRE_FALSE(status.has_value());
        CHECK(status.error().code == ci::ErrorCode::AwsService);
        CHECK(status.error().message ==
              "POST s3://b/k: 200 InternalError: We encountered an internal error. (request id "
              "R1)");
    }
    SUBCASE("no document, or an error status") {
        ci::http::Response odd;
        odd.status = 200;
        odd.body = "<CompleteMultipartUploadResult";
        CHECK_FALSE(ci::aws::parse_complete_multipart_upload("POST s3://b/k", odd).has_value());
        odd.body.clear();
        CHECK_FALSE(ci::aws::parse_complete_multipart_upload("POST s3://b/k", odd).has_value());
        odd.status = 400;
        odd.body = "<Error><Code>InvalidPart</Code><Message>m</Message></Error>";
        auto status = ci::aws::parse_complete_multipart_upload("POST s3://b/k", odd);
        REQUIRE_FALSE(status.has_value());
        CHECK(status.error().message.starts_with("POST s3://b/k: 400 InvalidPart: m"));
    }
}
