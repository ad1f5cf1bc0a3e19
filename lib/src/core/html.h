#pragma once

// Escaping text for HTML: the one function every HTML libci writes goes through (the web UI's
// logs, the results listings, the wheelhouse's PEP 503 pages, the badges).

#include <string>
#include <string_view>

namespace ci {

/// Appends `text` to `out` escaped for HTML text and attribute values (quoted): `&`, `<`, `>`,
/// `"` and `'` as `&amp;`, `&lt;`, `&gt;`, `&quot;` and `&#39;`; control characters other than
/// tab, LF, CR (kept) and NUL as numeric references (`&#x1b;`); NUL, which HTML does not allow, and
/// invalid UTF-8 as U+FFFD (one per maximal ill-formed part, as to_valid_utf8 does).
void append_html_escaped(std::string& out, std::string_view text);

/// append_html_escaped into a new string.
[[nodiscard]] std::string html_escape(std::string_view text);

} // namespace ci
