#pragma once

/// \file
/// HTTP requests and responses as plain values. Building a request, signing it and parsing a
/// response are pure functions of these; only the client (lib/src/http) touches the network.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ci::http {

/// One header line. Names keep the case they were given; comparisons ignore case.
struct Header {
    std::string name;
    std::string value;
    friend bool operator==(const Header&, const Header&) = default;
};

using Headers = std::vector<Header>;

/// The value of the first header named `name` (any case), or nullptr.
[[nodiscard]] const std::string* find_header(const Headers& headers, std::string_view name);

/// A request as it goes on the wire.
struct Request {
    std::string method = "GET";
    std::string scheme = "https"; ///< "https" or "http"
    std::string host;             ///< the authority: "host" or "host:port"
    std::string path = "/";       ///< as sent: already percent-encoded by whoever built it
    std::string query;            ///< as sent, without the '?': "a=1&b=x%2Fy"; may be empty
    Headers headers;              ///< in the order they are sent
    std::string body;
    /// When set, the body is this file's content, streamed from disk (`body` is then ignored).
    std::string body_file;
    /// With body_file: the body is `body_size` bytes of the file from `body_offset` (a part of a
    /// multipart upload); body_size 0 means the rest of the file.
    std::uint64_t body_offset = 0;
    std::uint64_t body_size = 0;

    /// "scheme://host/path?query".
    [[nodiscard]] std::string url() const;
    friend bool operator==(const Request&, const Request&) = default;
};

/// Percent-encodes every byte except the unreserved characters of RFC 3986 (A-Z a-z 0-9 - . _ ~)
/// and, when `keep_slash`, '/': the encoding AWS SigV4 requires.
[[nodiscard]] std::string uri_encode(std::string_view text, bool keep_slash = false);

/// uri_encode, appending to `out` (for building a long string without temporaries).
void append_uri_encoded(std::string& out, std::string_view text, bool keep_slash = false);

/// `reference` (a URI or a path with its query, as a Location header or a link gives it) with
/// every byte RFC 3986 does not allow in a URI reference percent-encoded: controls (CR and LF
/// included), space, bytes above 0x7e (UTF-8 is encoded byte by byte), `"<>\\^`{|}`, and a '%'
/// that does not start a %XX escape. What is allowed (reserved characters, %XX escapes) is
/// kept: a reference that is already encoded comes back unchanged.
[[nodiscard]] std::string uri_reference_encode(std::string_view reference);

/// Appends `text` to `out` with every %XX (two hex digits, either case) decoded to its byte,
/// whatever the byte is (%00 and bytes above 0x7f included; no UTF-8 check). A '%' not followed
/// by two hex digits ("%", "%4", "%zz") is kept as it is, never an error. '+' becomes a space
/// when `plus_is_space` (a query string in the form encoding browsers and curl --data-urlencode
/// send), else it stays '+' (a path).
void append_uri_decoded(std::string& out, std::string_view text, bool plus_is_space = false);

/// append_uri_decoded into a new string, '+' kept (a path, or a SigV4 query parameter).
[[nodiscard]] std::string uri_decode(std::string_view text);

} // namespace ci::http
