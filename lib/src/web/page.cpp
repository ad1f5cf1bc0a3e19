#include "web/page.h"

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/http/request.h>

#include "core/html.h"
#include "core/utf8.h"
#include "web/assets.h"

namespace ci::web {

namespace {

Data nav_entry(std::string_view label, std::string_view href, bool active) {
    Data entry;
    entry.set("label", std::string(label));
    entry.set("href", std::string(href));
    entry.set("active", active);
    return entry;
}

Data frame_data(const Frame& frame) {
    Data data;
    data.set("title", to_valid_utf8(frame.title)); // it may quote a request (a builder name)
    List nav;
    nav.emplace_back(nav_entry("Home", "/", frame.nav == Nav::Home));
    nav.emplace_back(nav_entry("Workers", "/workers", frame.nav == Nav::Workers));
    data.set("nav", Data(nav));
    if (!frame.user.empty()) {
        Data viewer;
        viewer.set("user", frame.user);
        viewer.set("csrf", frame.csrf_token);
        data.set("viewer", viewer);
    }
    data.set("login", login_link(frame.path));
    data.set("style", static_url("style.css"));
    data.set("script", static_url("app.js"));
    data.set("live", frame.live);
    return data;
}

} // namespace

std::string login_link(std::string_view path) {
    // The login page links to itself as it is: a `next` of its own would nest without end
    // (/login?next=/login%3Fnext%3D...), which a crawler follows page after page.
    if (path == "/login" || path.starts_with("/login?")) {
        return std::string(path);
    }
    return "/login?next=" + http::uri_encode(path.empty() ? "/" : path);
}

Result<std::string> render_page(const Frame& frame, std::string_view name, Data data) {
    auto layout = frame_data(frame);
    if (const auto* viewer = layout.get("viewer")) {
        data.set("viewer", *viewer);
    }
    add_partials(data);
    auto body = render(name, data);
    if (!body) {
        return fail(body.error());
    }
    // The one unescaped value of the layout: HTML this code rendered (with escaping) above.
    put(layout, "body", Data(*body));
    return render("layout.mustache", layout);
}

std::vector<std::pair<std::string, std::string>> security_headers() {
    return {
        {"Content-Security-Policy",
         "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
         "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "same-origin"},
        {"X-Frame-Options", "DENY"},
    };
}

std::vector<std::pair<std::string, std::string>> default_security_headers() {
    return {
        {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
        {"X-Content-Type-Options", "nosniff"},
    };
}

http::ServerResponse html_response(int status, std::string body) {
    http::ServerResponse response;
    response.status = status;
    response.content_type = "text/html; charset=utf-8";
    response.headers = security_headers();
    response.headers.emplace_back("Cache-Control", "no-store");
    response.body = std::move(body);
    return response;
}

http::ServerResponse page_response(const Frame& frame, std::string_view name, Data data) {
    auto page = render_page(frame, name, std::move(data));
    if (!page) {
        log::error("web page {}: {}", frame.path, page.error().message);
        return html_response(500,
                             "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                             "<title>Error</title></head><body><p>The page could not be "
                             "rendered: " +
                                 html_escape(page.error().message) + "</p></body></html>\n");
    }
    return html_response(200, std::move(*page));
}

http::ServerResponse error_page(const Frame& frame, int status, std::string_view message) {
    Data data;
    data.set("status", std::to_string(status));
    data.set("message", to_valid_utf8(std::string(message))); // it may quote a request
    auto response = page_response(frame, "error.mustache", std::move(data));
    if (response.status == 200) {
        response.status = status;
    }
    return response;
}

} // namespace ci::web
