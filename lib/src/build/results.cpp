#include "ci/build/results.h"

#include <fmt/format.h>

namespace ci::build {

namespace {

bool plain(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

std::string percent_encode(std::string_view text, bool encode_leading_dot) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool leading_dot = encode_leading_dot && i == 0 && c == '.';
        if (plain(c) && !leading_dot) {
            out += c;
        } else {
            out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
        }
    }
    return out;
}

// Whether `text` is valid UTF-8 (no overlong forms, no surrogates).
bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t length = 0;
        std::uint32_t point = 0;
        if (c < 0x80) {
            ++i;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            length = 2;
            point = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            length = 3;
            point = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            length = 4;
            point = c & 0x07;
        } else {
            return false;
        }
        if (i + length > text.size()) {
            return false;
        }
        for (std::size_t k = 1; k < length; ++k) {
            const auto next = static_cast<unsigned char>(text[i + k]);
            if ((next & 0xC0) != 0x80) {
                return false;
            }
            point = (point << 6) | (next & 0x3F);
        }
        const std::uint32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
        if (point < minimum || point > 0x10FFFF || (point >= 0xD800 && point <= 0xDFFF)) {
            return false;
        }
        i += length;
    }
    return true;
}

} // namespace

std::string path_segment(std::string_view name) {
    if (name.empty()) {
        return "-";
    }
    return percent_encode(name, true);
}

std::string results_path(std::string_view builder, std::string_view branch, std::int64_t build) {
    return fmt::format("{}/{}/{}", path_segment(builder), path_segment(branch), build);
}

std::string results_url(std::string_view base,
                        std::string_view builder,
                        std::string_view branch,
                        std::int64_t build) {
    while (base.ends_with('/')) {
        base.remove_suffix(1);
    }
    return fmt::format("{}/results/{}/{}/{}",
                       base,
                       percent_encode(path_segment(builder), false),
                       percent_encode(path_segment(branch), false),
                       build);
}

Status check_relative_path(std::string_view path) {
    const auto bad = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument, fmt::format("\"{}\": {}", path, why));
    };
    if (path.empty()) {
        return bad("is empty");
    }
    if (path.size() > 1024) {
        return fail(ErrorCode::InvalidArgument, "a path is longer than 1,024 bytes");
    }
    if (!valid_utf8(path)) {
        return fail(ErrorCode::InvalidArgument, "a path is not valid UTF-8");
    }
    for (const char c : path) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("a path has a control character (byte {:#04x})",
                                    static_cast<unsigned char>(c)));
        }
        if (c == '\\') {
            return bad("has a backslash");
        }
    }
    if (path.front() == '/') {
        return bad("is absolute (it must be relative)");
    }
    std::size_t start = 0;
    while (start <= path.size()) {
        const auto end = std::min(path.find('/', start), path.size());
        const auto segment = path.substr(start, end - start);
        if (segment.empty()) {
            return bad("has an empty segment (\"//\" or a trailing '/')");
        }
        if (segment == "." || segment == "..") {
            return bad(fmt::format("has a \"{}\" segment", segment));
        }
        start = end + 1;
    }
    return {};
}

} // namespace ci::build
