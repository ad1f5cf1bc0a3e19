#include "web/badge.h"

#include <fmt/format.h>

#include "core/html.h"
#include "core/utf8.h"

namespace ci::web {

namespace {

std::string_view colour(std::string_view result) {
    if (result == "success") {
        return "#1a7f37";
    }
    if (result == "failure") {
        return "#cf222e";
    }
    if (result == "warnings") {
        return "#bf8700";
    }
    if (result == "exception") {
        return "#8250df";
    }
    if (result == "running" || result == "retry") {
        return "#0969da";
    }
    return "#6e7781";
}

// A text's width in the badge's 11px sans-serif font, roughly (7 px per character, as the
// shields.io look): exact metrics would need the font.
int text_width(std::string_view text) {
    int characters = 0;
    for (const unsigned char c : text) {
        characters += (c & 0xC0U) != 0x80U ? 1 : 0; // count UTF-8 characters, not bytes
    }
    return 10 + (7 * characters);
}

// Text XML allows: valid UTF-8 without control characters (a name from a URL may have either).
std::string xml_text(std::string_view text) {
    auto out = to_valid_utf8(std::string(text));
    for (auto& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            c = '?';
        }
    }
    return out;
}

} // namespace

std::string badge_svg(std::string_view label_in, std::string_view result_in) {
    const auto label = xml_text(label_in);
    const auto result = xml_text(result_in);
    const int left = text_width(label);
    const int right = text_width(result);
    const auto label_text = html_escape(label);
    const auto result_text = html_escape(result);
    return fmt::format(
        R"(<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" aria-label="{label}: {result}">)"
        "<title>{label}: {result}</title>"
        R"(<rect width="{left}" height="20" fill="#555"/>)"
        R"(<rect x="{left}" width="{right}" height="20" fill="{colour}"/>)"
        R"(<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">)"
        R"(<text x="{label_x}" y="14">{label}</text><text x="{result_x}" y="14">{result}</text></g>)"
        "</svg>\n",
        fmt::arg("total", left + right),
        fmt::arg("left", left),
        fmt::arg("right", right),
        fmt::arg("colour", colour(result)),
        fmt::arg("label", label_text),
        fmt::arg("result", result_text),
        fmt::arg("label_x", left / 2),
        fmt::arg("result_x", left + (right / 2)));
}

} // namespace ci::web
