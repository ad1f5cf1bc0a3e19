#include "master/guards.h"

#include <fmt/format.h>

#include "core/ascii.h"
#include "master/json.h"

namespace ci::master {

http::ServerResponse too_many_failures(std::chrono::seconds wait) {
    auto response = error_response(
        429,
        fmt::format("too many failed attempts from this address; try again in {} s", wait.count()));
    response.headers.emplace_back("Retry-After", std::to_string(wait.count()));
    return response;
}

namespace {

// "http://host:8010" -> "host:8010"; "" when `origin` has no scheme.
std::string_view origin_authority(std::string_view origin) {
    const auto scheme_end = origin.find("://");
    if (scheme_end == std::string_view::npos) {
        return {};
    }
    auto authority = origin.substr(scheme_end + 3);
    return authority.substr(0, authority.find('/'));
}

// The media type of a Content-Type value, without parameters or spaces: "application/json".
std::string_view media_type(std::string_view content_type) {
    content_type = content_type.substr(0, content_type.find(';'));
    const auto first = content_type.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = content_type.find_last_not_of(" \t");
    return content_type.substr(first, last - first + 1);
}

bool has_body(const http::ServerRequest& request) {
    const auto length = request.header("content-length");
    return (!length.empty() && length != "0") || !request.header("transfer-encoding").empty();
}

} // namespace

std::optional<http::ServerResponse> refuse_cross_site(const http::ServerRequest& request,
                                                      std::string_view expected_type) {
    if (const auto site = request.header("sec-fetch-site");
        !site.empty() && !ascii_iequals(site, "same-origin") && !ascii_iequals(site, "none")) {
        return error_response(
            403,
            fmt::format("a request from another site is refused (Sec-Fetch-Site: {})",
                        log::field(site, 32)));
    }
    if (const auto origin = request.header("origin"); !origin.empty()) {
        const auto authority = origin_authority(origin);
        if (authority.empty() || !ascii_iequals(authority, request.header("host"))) {
            return error_response(403,
                                  fmt::format("a request from another origin is refused (Origin: "
                                              "{}; this is {})",
                                              log::field(origin, 100),
                                              log::field(request.header("host"), 100)));
        }
    }
    if (has_body(request) &&
        !ascii_iequals(media_type(request.header("content-type")), expected_type)) {
        return error_response(
            415,
            fmt::format("the body must be {} sent as Content-Type: {} (not \"{}\")",
                        expected_type == "application/json" ? "JSON" : "a form",
                        expected_type,
                        log::field(request.header("content-type"), 100)));
    }
    return std::nullopt;
}

} // namespace ci::master
