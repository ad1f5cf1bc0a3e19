#pragma once

/// \file
/// HTTP/1.1 request messages as text, the form of the AWS SigV4 test suite's request files and
/// of a request dumped for debugging.

#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/http/request.h>

namespace ci::http {

/// Parses "METHOD TARGET HTTP/1.1", header lines "Name:value" (a line that starts with a space or
/// tab continues the previous value, joined with "\n"), an empty line, then the body. The target
/// may contain spaces; its part after the first '?' is the query. Header values are kept exactly
/// as written after the colon. `host` is taken from the Host header. Fails with InvalidArgument
/// naming the line that is malformed.
[[nodiscard]] Result<Request> parse_request_message(std::string_view text);

/// The inverse of parse_request_message: request line, "Name:value" lines, an empty line, body.
[[nodiscard]] std::string format_request_message(const Request& request);

} // namespace ci::http
