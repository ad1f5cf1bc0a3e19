#include "ci/http/request.h"

#include <array>

#include "core/ascii.h"

namespace ci::http {

const std::string* find_header(const Headers& headers, std::string_view name) {
    for (const auto& header : headers) {
        // Header names are ASCII (RFC 9110): compared without the locale.
        if (ascii_iequals(header.name, name)) {
            return &header.value;
        }
    }
    return nullptr;
}

std::string Request::url() const {
    std::string out = scheme + "://" + host + path;
    if (!query.empty()) {
        out += '?';
        out += query;
    }
    return out;
}

void append_uri_encoded(std::string& out, std::string_view text, bool keep_slash) {
    static constexpr std::string_view digits = "0123456789ABCDEF";
    const auto unreserved = [keep_slash](unsigned char byte) {
        return (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
               (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' || byte == '_' ||
               byte == '~' || (keep_slash && byte == '/');
    };
    // Runs of characters that need no encoding (most of any path or value) are copied whole.
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (unreserved(byte)) {
            continue;
        }
        out.append(text.data() + start, i - start);
        const std::array<char, 3> escaped{'%', digits[byte >> 4U], digits[byte & 0x0FU]};
        out.append(escaped.data(), escaped.size());
        start = i + 1;
    }
    out.append(text.data() + start, text.size() - start);
}

std::string uri_encode(std::string_view text, bool keep_slash) {
    std::string out;
    out.reserve(text.size() + text.size() / 2);
    append_uri_encoded(out, text, keep_slash);
    return out;
}

std::string uri_reference_encode(std::string_view reference) {
    static constexpr std::string_view digits = "0123456789ABCDEF";
    static constexpr std::string_view allowed_marks = "-._~:/?#[]@!$&'()*+,;=";
    std::string out;
    out.reserve(reference.size());
    for (std::size_t i = 0; i < reference.size(); ++i) {
        const char c = reference[i];
        const auto byte = static_cast<unsigned char>(c);
        const bool escape = c == '%' && i + 2 < reference.size() &&
                            ascii_hex_value(reference[i + 1]) >= 0 &&
                            ascii_hex_value(reference[i + 2]) >= 0;
        const bool allowed = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                             (byte >= '0' && byte <= '9') ||
                             allowed_marks.find(c) != std::string_view::npos || escape;
        if (allowed) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(digits[byte >> 4U]);
            out.push_back(digits[byte & 0x0FU]);
        }
    }
    return out;
}

void append_uri_decoded(std::string& out, std::string_view text, bool plus_is_space) {
    out.reserve(out.size() + text.size());
    // Runs of bytes that decode to themselves (most of any path or value) are copied whole.
    std::size_t start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '%' && i + 2 < text.size()) {
            const int high = ascii_hex_value(text[i + 1]);
            const int low = ascii_hex_value(text[i + 2]);
            if (high >= 0 && low >= 0) {
                out.append(text.data() + start, i - start);
                out.push_back(static_cast<char>((high << 4) | low));
                i += 2;
                start = i + 1;
            }
        } else if (c == '+' && plus_is_space) {
            out.append(text.data() + start, i - start);
            out.push_back(' ');
            start = i + 1;
        }
    }
    out.append(text.data() + start, text.size() - start);
}

std::string uri_decode(std::string_view text) {
    std::string out;
    append_uri_decoded(out, text, false);
    return out;
}

} // namespace ci::http
