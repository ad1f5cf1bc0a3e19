#pragma once

// Status badges for READMEs (GET /badge/BUILDER.svg): a small SVG with a label ("tests") and a
// result ("success", "failure", "running", "unknown"), drawn by the master with no external
// resource. Pure.

#include <string>
#include <string_view>

namespace ci::web {

/// The SVG of a badge: `label` on grey, `result` on its colour (green for success, red for
/// failure, ...; grey for "unknown" and anything else). Both texts are XML-escaped, invalid
/// UTF-8 replaced and control characters shown as '?' (the SVG stays well-formed XML).
[[nodiscard]] std::string badge_svg(std::string_view label, std::string_view result);

} // namespace ci::web
