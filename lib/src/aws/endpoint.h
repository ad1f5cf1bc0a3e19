#pragma once

// What the S3 and EC2 clients share: endpoint URLs split into parts, and AWS error documents
// turned into Errors.

#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/http/client.h>

namespace ci::aws::detail {

/// "http://127.0.0.1:9000/base" -> {"http", "127.0.0.1:9000", "/base"}.
struct EndpointParts {
    std::string scheme;
    std::string host;
    std::string path; ///< without a trailing '/'; empty for the root
};

/// Splits an endpoint URL. Fails with InvalidArgument for anything but http(s)://host[:port][/path]
/// without query or fragment.
[[nodiscard]] Result<EndpointParts> parse_endpoint(std::string_view url);

/// The two shapes of AWS error documents.
enum class ErrorFormat {
    S3,  ///< <Error><Code/><Message/><RequestId/></Error>
    Ec2, ///< <Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>
};

/// What an AWS error response says: code, message, request id (empty when absent).
struct AwsErrorBody {
    std::string code;
    std::string message;
    std::string request_id;
};

/// Reads the error document of `response`; falls back to the status text (e.g. "NotFound" for
/// an empty HEAD answer) and the x-amz-request-id / x-amzn-RequestId header.
[[nodiscard]] AwsErrorBody parse_error_body(const http::Response& response, ErrorFormat format);

/// Error{AwsService, "<what>: <status> <Code>: <Message> (request id <id>)"}.
[[nodiscard]] Error
aws_error(std::string_view what, const http::Response& response, ErrorFormat format);

} // namespace ci::aws::detail
