#pragma once

// The pure parts of the web UI's forms and logins: an application/x-www-form-urlencoded body
// (what an HTML form posts), the Cookie header, and where a form's answer may send the browser
// (a path of this site, never another site: an open redirect would let a link to /login send a
// person anywhere once logged in).

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <ci/core/error.h>
#include <ci/http/server.h>

namespace ci::master {

/// The fields of a posted form, in the order sent.
class Form {
public:
    /// The one value of `name`; "" when absent. A field sent twice is refused by parse_form
    /// unless it was declared repeatable there, so this never picks one of two.
    [[nodiscard]] std::string_view get(std::string_view name) const;
    /// Whether `name` was sent (even empty).
    [[nodiscard]] bool has(std::string_view name) const;
    /// Every value of `name`, in order (a repeatable field: `builder`).
    [[nodiscard]] std::vector<std::string_view> all(std::string_view name) const;

    std::vector<std::pair<std::string, std::string>> fields;
};

/// The most fields a form may have.
inline constexpr std::size_t max_form_fields = 256;

/// Parses `body` (application/x-www-form-urlencoded: `name=value` pairs joined by '&', '+' a
/// space, %XX a byte). Fails with InvalidArgument naming the field when: a name or value is not
/// valid UTF-8 or holds a control character other than tab, CR and LF (which text areas send);
/// a field other than those in `repeatable` is sent twice (which of two csrf tokens would be
/// checked?); there are more than max_form_fields fields. The body's size is bounded by the
/// route (Router's max_body).
[[nodiscard]] Result<Form> parse_form(std::string_view body,
                                      std::initializer_list<std::string_view> repeatable = {});

/// The values of the cookies named `name` in a Cookie header ("a=1; b=2"), in order (a
/// browser may send two of one name, from different paths or domains).
[[nodiscard]] std::vector<std::string_view> cookie_values(std::string_view header,
                                                          std::string_view name);

/// `target` when it is a path of this site ("/builders/x?branch=y"): it starts with a single
/// '/' (not "//" nor "/\", which browsers read as another host) and holds no control
/// character or backslash; else `fallback`.
[[nodiscard]] std::string local_path(std::string_view target, std::string_view fallback = "/");

/// The page a form was posted from: the path and query of its Referer when that names this
/// site (its host is the request's Host), else `fallback`.
[[nodiscard]] std::string came_from(const http::ServerRequest& request, std::string_view fallback);

/// 303 See Other to `target` (a local path and query), sent percent-encoded where a URI does
/// not allow it as it is (http::uri_reference_encode: a space, UTF-8, a control character).
[[nodiscard]] http::ServerResponse see_other(std::string_view target);

/// Whether a browser asks for a page: a GET or HEAD with `text/html` in its Accept (browsers
/// send it when they navigate; scripts and fetch() do not).
[[nodiscard]] bool wants_page(const http::ServerRequest& request);

} // namespace ci::master
