#pragma once

// A web UI page: its body rendered from a template, inside the layout (layout.mustache: the
// header with the navigation, the viewer's login or logout link, the style sheet and script),
// answered with the security headers every page carries.

#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/http/server.h>

#include "web/render.h"

namespace ci::web {

/// Which navigation entry a page belongs to (highlighted in the header).
enum class Nav { None, Home, Workers };

/// What the layout shows around a page's body.
struct Frame {
    std::string title;      ///< the page's title (escaped): "Workers"
    Nav nav = Nav::None;    ///< its navigation entry
    std::string user;       ///< the logged-in viewer; empty: nobody (a login link instead)
    std::string csrf_token; ///< the viewer's CSRF token (the logout form's hidden `csrf`)
    std::string path;       ///< the page's path and query: where the login link comes back to
    bool live = false;      ///< the page refreshes itself (app.js looks for data-live)
};

/// The layout's login link on the page at `path` (path and query): `/login?next=PATH`, or the
/// login page's own address on the login page itself.
[[nodiscard]] std::string login_link(std::string_view path);

/// Renders template `name` with `data` and puts it into the layout. Data of the body may use
/// the frame's values too: `viewer` (an object with `user` and `csrf`, present only when someone
/// is logged in). Fails as render() does. Thread-safe.
[[nodiscard]] Result<std::string> render_page(const Frame& frame, std::string_view name, Data data);

/// Headers every HTML page carries: a Content-Security-Policy allowing only this origin's
/// scripts, styles and images (no inline script), nosniff, a same-origin referrer, no framing.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> security_headers();

/// Headers every answer of the master's HTTP port carries unless it sets its own (JSON, text,
/// SVG, the server's own errors): nosniff, and a Content-Security-Policy that allows nothing
/// (`default-src 'none'; frame-ancestors 'none'`), so that an answer that echoes a request
/// (a path with `<script>` in a JSON error) never runs as a page. HTML pages replace the policy
/// with security_headers()'s.
[[nodiscard]] std::vector<std::pair<std::string, std::string>> default_security_headers();

/// An HTML answer (text/html; charset=utf-8) with the security headers, not cached by browsers
/// or proxies (pages show live state).
[[nodiscard]] http::ServerResponse html_response(int status, std::string body);

/// render_page as an answer: 200 with the page, or 500 with a short page naming the error.
[[nodiscard]] http::ServerResponse
page_response(const Frame& frame, std::string_view name, Data data);

/// An HTML error page (404 for an unknown builder, ...) in the layout: `message` is escaped.
[[nodiscard]] http::ServerResponse
error_page(const Frame& frame, int status, std::string_view message);

} // namespace ci::web
