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
    const auto lead = utf8_lead(byte(i));
    if (lead.length == 0) {
        return {1, false};
    }
    const std::size_t continuations = lead.length - 1;
    unsigned char low = lead.low;
    unsigned char high = lead.high;
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

Utf8Lead utf8_lead(unsigned char lead) {
    if (lead < 0x80) {
        return {1};
    }
    if (lead >= 0xc2 && lead <= 0xdf) {
        return {2};
    }
    if (lead >= 0xe0 && lead <= 0xef) {
        return {3,
                static_cast<unsigned char>(lead == 0xe0 ? 0xa0 : 0x80),
                static_cast<unsigned char>(lead == 0xed ? 0x9f : 0xbf)};
    }
    if (lead >= 0xf0 && lead <= 0xf4) {
        return {4,
                static_cast<unsigned char>(lead == 0xf0 ? 0x90 : 0x80),
                static_cast<unsigned char>(lead == 0xf4 ? 0x8f : 0xbf)};
    }
    return {}; // 80-C1, F5-FF: never a lead
}

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
