#include "aws/endpoint.h"

#include <fmt/format.h>
#include <pugixml.hpp>

namespace ci::aws::detail {

namespace {

std::string_view status_code_name(int status) {
    switch (status) {
    case 301:
        return "PermanentRedirect";
    case 400:
        return "BadRequest";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 409:
        return "Conflict";
    case 412:
        return "PreconditionFailed";
    case 500:
        return "InternalError";
    case 503:
        return "ServiceUnavailable";
    default:
        return "HttpError";
    }
}

} // namespace

Result<EndpointParts> parse_endpoint(std::string_view url) {
    EndpointParts parts;
    const std::size_t scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("endpoint URL \"{}\": expected http://host[:port] or "
                                "https://host[:port]",
                                url));
    }
    parts.scheme = std::string(url.substr(0, scheme_end));
    if (parts.scheme != "http" && parts.scheme != "https") {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("endpoint URL \"{}\": the scheme must be http or https", url));
    }
    std::string_view rest = url.substr(scheme_end + 3);
    if (rest.find_first_of("?#") != std::string_view::npos) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("endpoint URL \"{}\": a query or fragment is not allowed", url));
    }
    const std::size_t slash = rest.find('/');
    parts.host = std::string(rest.substr(0, slash));
    if (parts.host.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("endpoint URL \"{}\": the host is empty", url));
    }
    if (slash != std::string_view::npos) {
        parts.path = std::string(rest.substr(slash));
        while (!parts.path.empty() && parts.path.back() == '/') {
            parts.path.pop_back();
        }
    }
    return parts;
}

AwsErrorBody parse_error_body(const http::Response& response, ErrorFormat format) {
    AwsErrorBody out;
    pugi::xml_document document;
    if (!response.body.empty() &&
        document.load_buffer(response.body.data(), response.body.size())) {
        // The documented shape first; then any Error element, since services and their
        // emulators also answer with the Query API's generic <ErrorResponse><Error>...
        pugi::xml_node error = format == ErrorFormat::S3
                                   ? document.child("Error")
                                   : document.child("Response").child("Errors").child("Error");
        if (!error) {
            error = document.select_node("//Error").node();
        }
        out.code = error.child_value("Code");
        out.message = error.child_value("Message");
        for (const char* query : {"//RequestId", "//RequestID"}) {
            if (out.request_id.empty()) {
                out.request_id = document.select_node(query).node().child_value();
            }
        }
    }
    if (out.code.empty()) {
        out.code = std::string(status_code_name(response.status));
    }
    if (out.request_id.empty()) {
        for (const auto* name : {"x-amz-request-id", "x-amzn-RequestId"}) {
            if (const std::string* id = response.header(name)) {
                out.request_id = *id;
                break;
            }
        }
    }
    return out;
}

Error aws_error(std::string_view what, const http::Response& response, ErrorFormat format) {
    const AwsErrorBody body = parse_error_body(response, format);
    std::string message = fmt::format("{}: {} {}", what, response.status, body.code);
    if (!body.message.empty()) {
        message += ": " + body.message;
    }
    if (!body.request_id.empty()) {
        message += fmt::format(" (request id {})", body.request_id);
    }
    return Error{ErrorCode::AwsService, std::move(message), response.status};
}

} // namespace ci::aws::detail
