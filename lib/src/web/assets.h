#pragma once

// The web UI's assets (templates, style sheet, script), embedded into the library at build time
// by embed.py from lib/src/web/assets/ (a meson custom_target): ci-master serves its pages with
// no file beside it and no front-end build step.

#include <span>
#include <string_view>

namespace ci::web {

/// One embedded file.
struct Asset {
    std::string_view name;         ///< its file name: "style.css", "home.mustache"
    std::string_view content_type; ///< what /static/NAME answers with
    std::string_view bytes;        ///< its content (static storage)
    std::string_view hash;         ///< 16 hex digits of its SHA-256: the cache-busting version
};

/// Every embedded asset, sorted as the build listed them. Static storage; thread-safe.
[[nodiscard]] std::span<const Asset> assets();

/// The asset named `name`, or nullptr.
[[nodiscard]] const Asset* find_asset(std::string_view name);

/// The URL a page links an asset with: "/static/NAME?v=HASH" (cacheable for good), or
/// "/static/NAME" for an unknown name.
[[nodiscard]] std::string static_url(std::string_view name);

} // namespace ci::web
