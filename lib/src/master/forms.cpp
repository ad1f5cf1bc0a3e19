#include "master/forms.h"

#include <algorithm>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/http/request.h>

#include "core/ascii.h"
#include "core/utf8.h"

namespace ci::master {

std::string_view Form::get(std::string_view name) const {
    for (const auto& [key, value] : fields) {
        if (key == name) {
            return value;
        }
    }
    return {};
}

bool Form::has(std::string_view name) const {
    return std::ranges::any_of(fields, [&](const auto& field) { return field.first == name; });
}

std::vector<std::string_view> Form::all(std::string_view name) const {
    std::vector<std::string_view> out;
    for (const auto& [key, value] : fields) {
        if (key == name) {
            out.emplace_back(value);
        }
    }
    return out;
}

namespace {

// Text a form field may hold: UTF-8 without control characters but tab, CR and LF.
bool valid_text(std::string_view text) {
    return !first_invalid_utf8(text) && std::ranges::none_of(text, [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return (byte < 0x20 && c != '\t' && c != '\r' && c != '\n') || byte == 0x7f;
    });
}

} // namespace

Result<Form> parse_form(std::string_view body, std::initializer_list<std::string_view> repeatable) {
    Form form;
    while (!body.empty()) {
        const auto amp = body.find('&');
        const auto pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (pair.empty()) {
            continue; // "a=1&&b=2"
        }
        if (form.fields.size() == max_form_fields) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("the form has more than {} fields", max_form_fields));
        }
        const auto equals = pair.find('=');
        std::string name;
        std::string value;
        http::append_uri_decoded(name, pair.substr(0, equals), true);
        if (equals != std::string_view::npos) {
            http::append_uri_decoded(value, pair.substr(equals + 1), true);
        }
        if (!valid_text(name)) {
            return fail(ErrorCode::InvalidArgument,
                        "a form field's name is not UTF-8 text without control characters");
        }
        if (!valid_text(value)) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("form field {}: not UTF-8 text without control characters",
                                    log::field(name, 64)));
        }
        if (form.has(name) && std::ranges::find(repeatable, name) == repeatable.end()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("form field {} is sent more than once", log::field(name, 64)));
        }
        form.fields.emplace_back(std::move(name), std::move(value));
    }
    return form;
}

std::vector<std::string_view> cookie_values(std::string_view header, std::string_view name) {
    std::vector<std::string_view> out;
    while (!header.empty()) {
        const auto semicolon = header.find(';');
        auto pair = header.substr(0, semicolon);
        header =
            semicolon == std::string_view::npos ? std::string_view() : header.substr(semicolon + 1);
        while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) {
            pair.remove_prefix(1);
        }
        while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) {
            pair.remove_suffix(1);
        }
        const auto equals = pair.find('=');
        if (equals == std::string_view::npos || pair.substr(0, equals) != name) {
            continue;
        }
        auto value = pair.substr(equals + 1);
        // RFC 6265 allows a value in double quotes.
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
            value = value.substr(1, value.size() - 2);
        }
        out.push_back(value);
    }
    return out;
}

std::string local_path(std::string_view target, std::string_view fallback) {
    const bool local = target.starts_with('/') && !target.starts_with("//") &&
                       !target.starts_with("/\\") && std::ranges::none_of(target, [](char c) {
                           const auto byte = static_cast<unsigned char>(c);
                           return byte < 0x20 || byte == 0x7f || c == '\\';
                       });
    return std::string(local ? target : fallback);
}

std::string came_from(const http::ServerRequest& request, std::string_view fallback) {
    const auto referer = request.header("referer");
    const auto scheme_end = referer.find("://");
    if (scheme_end == std::string_view::npos) {
        return std::string(fallback);
    }
    const auto rest = referer.substr(scheme_end + 3);
    const auto slash = rest.find('/');
    const auto authority = rest.substr(0, slash);
    if (slash == std::string_view::npos || request.header("host").empty() ||
        !ascii_iequals(authority, request.header("host"))) {
        return std::string(fallback);
    }
    auto path = rest.substr(slash);
    path = path.substr(0, path.find('#'));
    return local_path(path, fallback);
}

http::ServerResponse see_other(std::string_view target) {
    // A path of a request (a branch with a space, a builder in UTF-8) is sent as a URI.
    auto location = http::uri_reference_encode(target);
    http::ServerResponse response;
    response.status = 303;
    response.content_type = "text/plain; charset=utf-8";
    response.body = "See " + location + "\n";
    response.headers.emplace_back("Location", std::move(location));
    return response;
}

bool wants_page(const http::ServerRequest& request) {
    return (request.method == "GET" || request.method == "HEAD") &&
           request.header("accept").find("text/html") != std::string_view::npos;
}

} // namespace ci::master
