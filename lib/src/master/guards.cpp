#include "master/guards.h"

#include <algorithm>

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <ci/core/log.h>

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

namespace {

// The host of an http(s) URL, lower-cased: "https://CI.example.org:8443/x" -> "ci.example.org";
// "[::1]" keeps its brackets. "" when `url` has no "://".
std::string url_host(std::string_view url) {
    auto authority = origin_authority(url);
    authority = authority.substr(0, authority.find_first_of("?#"));
    authority.remove_prefix(authority.rfind('@') + 1); // npos + 1: nothing
    if (authority.starts_with('[')) {
        return ascii_lower(authority.substr(0, authority.find(']') + 1));
    }
    return ascii_lower(authority.substr(0, authority.find(':')));
}

bool is_ipv4(std::string_view text) {
    std::string copy(text);
    in_addr address{};
    return ::inet_pton(AF_INET, copy.c_str(), &address) == 1;
}

bool is_ipv6(std::string_view text) {
    std::string copy(text);
    in6_addr address{};
    return ::inet_pton(AF_INET6, copy.c_str(), &address) == 1;
}

bool is_port(std::string_view text) {
    return !text.empty() && text.size() <= 5 &&
           std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace

std::vector<std::string> served_host_names(std::string_view host,
                                           std::string_view url,
                                           const std::vector<std::string>& web_hosts) {
    std::vector<std::string> names{"localhost"};
    const auto add = [&names](std::string name) {
        if (name.ends_with('.')) {
            name.pop_back();
        }
        if (!name.empty() && std::ranges::find(names, name) == names.end()) {
            names.push_back(std::move(name));
        }
    };
    add(ascii_lower(host));
    add(url_host(url));
    for (const auto& name : web_hosts) {
        add(ascii_lower(name));
    }
    return names;
}

std::optional<http::ServerResponse> refuse_wrong_host(const http::ServerRequest& request,
                                                      const std::vector<std::string>& names) {
    const auto host = request.header("host");
    const auto fields = std::ranges::count_if(
        request.headers, [](const auto& field) { return field.first == "host"; });
    if (fields == 0) {
        return std::nullopt;
    }
    const auto bad_host = [host] {
        return error_response(
            400,
            fmt::format("bad Host header \"{}\": expected one host[:port]", log::field(host, 100)));
    };
    if (fields > 1) {
        return bad_host();
    }
    std::string_view name = host;
    if (name.starts_with('[')) {
        // An IPv6 address: "[::1]:8010".
        const auto close = name.find(']');
        const auto rest = close == std::string_view::npos ? name : name.substr(close + 1);
        const bool well_formed = close != std::string_view::npos &&
                                 is_ipv6(name.substr(1, close - 1)) &&
                                 (rest.empty() || (rest.front() == ':' && is_port(rest.substr(1))));
        return well_formed ? std::nullopt : std::optional(bad_host());
    }
    if (const auto colon = name.find(':'); colon != std::string_view::npos) {
        if (!is_port(name.substr(colon + 1))) {
            return bad_host();
        }
        name = name.substr(0, colon);
    }
    if (name.empty()) {
        return bad_host();
    }
    if (is_ipv4(name)) {
        return std::nullopt;
    }
    auto lower = ascii_lower(name);
    if (lower.ends_with('.')) {
        lower.pop_back();
    }
    if (std::ranges::find(names, lower) != names.end()) {
        return std::nullopt;
    }
    return error_response(
        421,
        fmt::format("this master is not served as \"{}\" (the request's Host header): a page of "
                    "another site may have made its name resolve here (DNS rebinding). If it is "
                    "this master's name, add it to buildmaster.web_hosts",
                    log::field(name, 100)));
}

} // namespace ci::master
