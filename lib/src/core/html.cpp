#include "core/html.h"

#include "core/utf8.h"

namespace ci {

namespace {

void append_valid_escaped(std::string& out, std::string_view text) {
    static constexpr std::string_view hex = "0123456789abcdef";
    // Runs of bytes that need no escaping (most of any text) are copied whole.
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const auto byte = static_cast<unsigned char>(c);
        std::string_view entity;
        switch (c) {
        case '&':
            entity = "&amp;";
            break;
        case '<':
            entity = "&lt;";
            break;
        case '>':
            entity = "&gt;";
            break;
        case '"':
            entity = "&quot;";
            break;
        case '\'':
            entity = "&#39;";
            break;
        case '\0':
            entity = "\xEF\xBF\xBD"; // &#0; is an error: HTML parsers make it U+FFFD
            break;
        default:
            // Tab, LF and CR are whitespace HTML keeps (a log line's tab, a text area's lines).
            if ((byte >= 0x20 && byte != 0x7f) || c == '\t' || c == '\n' || c == '\r') {
                continue;
            }
            // A control character as a numeric reference: "&#x1b;", "&#x9;".
            out.append(text.data() + start, i - start);
            out += "&#x";
            if (byte >= 0x10) {
                out += hex[byte >> 4U];
            }
            out += hex[byte & 0x0FU];
            out += ';';
            start = i + 1;
            continue;
        }
        out.append(text.data() + start, i - start);
        out += entity;
        start = i + 1;
    }
    out.append(text.data() + start, text.size() - start);
}

} // namespace

void append_html_escaped(std::string& out, std::string_view text) {
    if (!first_invalid_utf8(text)) {
        append_valid_escaped(out, text);
        return;
    }
    append_valid_escaped(out, to_valid_utf8(std::string(text)));
}

std::string html_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    append_html_escaped(out, text);
    return out;
}

} // namespace ci
