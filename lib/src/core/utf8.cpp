#include "core/utf8.h"

namespace ci {

namespace {

// How a sequence starting at text[i] reads: `valid` with its length, or not valid with the
// length of its maximal subpart (at least 1), which one U+FFFD replaces.
struct Sequence {
    std::size_t length = 1;
    bool valid = true;
};

Sequence read_sequence(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char lead = byte(i);
    if (lead < 0x80) {
        return {1, true};
    }
    // The continuation bytes a lead allows: the second one's range is narrower for E0 (no
    // overlong forms), ED (no surrogates), F0 (no overlong forms) and F4 (nothing past U+10FFFF).
    std::size_t continuations = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
        continuations = 1;
    } else if (lead >= 0xe0 && lead <= 0xef) {
        continuations = 2;
        low = lead == 0xe0 ? 0xa0 : 0x80;
        high = lead == 0xed ? 0x9f : 0xbf;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
        continuations = 3;
        low = lead == 0xf0 ? 0x90 : 0x80;
        high = lead == 0xf4 ? 0x8f : 0xbf;
    } else {
        return {1, false}; // 80-C1, F5-FF: never a lead
    }
    for (std::size_t k = 1; k <= continuations; ++k) {
        if (i + k >= text.size() || byte(i + k) < low || byte(i + k) > high) {
            return {k, false};
        }
        low = 0x80;
        high = 0xbf;
    }
    return {continuations + 1, true};
}

} // namespace

std::size_t utf8_sequence_length(std::string_view text, std::size_t i) {
    const auto sequence = read_sequence(text, i);
    return sequence.valid ? sequence.length : 0;
}

std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        const auto sequence = read_sequence(text, i);
        if (!sequence.valid) {
            return i;
        }
        i += sequence.length;
    }
    return std::nullopt;
}

std::string to_valid_utf8(std::string text) {
    const auto first = first_invalid_utf8(text);
    if (!first) {
        return text;
    }
    std::string out = text.substr(0, *first);
    out.reserve(text.size() + 16);
    for (std::size_t i = *first; i < text.size();) {
        const auto sequence = read_sequence(text, i);
        if (sequence.valid) {
            out.append(text, i, sequence.length);
        } else {
            out += "\xef\xbf\xbd"; // U+FFFD
        }
        i += sequence.length;
    }
    return out;
}

} // namespace ci
