#pragma once

// ASCII case folding for protocol text (header names, hex digits, keywords, host names), private
// to libci. Only 'A'-'Z' and 'a'-'z' fold; every other byte, including UTF-8 bytes above 0x7f,
// is kept as it is. Independent of the C locale on purpose: std::tolower follows setlocale(),
// which a program embedding libci may call (in a Turkish locale 'I' does not fold to 'i'; in a
// Latin-1 locale bytes above 0x7f fold too).
//
// aws/sigv4.cpp keeps its own eight-bytes-at-a-time lower-casing (write_ascii_lower_swar): a
// measured speed trick for the signer's hot path, tested against ascii_lower.

#include <algorithm>
#include <string>
#include <string_view>

namespace ci {

/// The value of hex digit `c` ('0'-'9', 'a'-'f', 'A'-'F'), or -1 for any other byte.
[[nodiscard]] constexpr int ascii_hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/// `c` lower-cased if it is 'A'-'Z', else `c`.
[[nodiscard]] constexpr char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

/// Lower-cases 'A'-'Z' in `text`, in place.
constexpr void ascii_lower_in_place(std::string& text) noexcept {
    for (char& c : text) {
        c = ascii_lower(c);
    }
}

/// A copy of `text` with 'A'-'Z' lower-cased.
[[nodiscard]] inline std::string ascii_lower(std::string_view text) {
    std::string out(text);
    ascii_lower_in_place(out);
    return out;
}

/// Whether `a` and `b` are equal once 'A'-'Z' are lower-cased in both.
[[nodiscard]] constexpr bool ascii_iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

} // namespace ci
