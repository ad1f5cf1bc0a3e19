#pragma once

// UTF-8 as RFC 3629 defines it (no surrogates, nothing above U+10FFFF, shortest forms only), for
// text that comes in from outside (commit messages, author names) and goes out as JSON, which
// must be valid UTF-8 for a strict decoder.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ci {

/// The byte offset of the first byte of `text` that does not begin a well-formed UTF-8
/// sequence; nullopt when `text` is valid UTF-8.
[[nodiscard]] std::optional<std::size_t> first_invalid_utf8(std::string_view text);

/// The length of the well-formed UTF-8 sequence that begins at `text[i]` (1 to 4); 0 when the
/// bytes there do not begin one. `i` must be less than `text.size()`.
[[nodiscard]] std::size_t utf8_sequence_length(std::string_view text, std::size_t i);

/// What a well-formed UTF-8 sequence that begins with byte `lead` is: its length (1 to 4; 0 when
/// no sequence begins with `lead`) and the range its second byte must be in (narrower than
/// 80-BF after E0, ED, F0 and F4: no overlong forms, surrogates, or code points past U+10FFFF).
/// Its later bytes are 80-BF.
struct Utf8Lead {
    std::size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xbf;
};
[[nodiscard]] Utf8Lead utf8_lead(unsigned char lead);

/// `text` with every ill-formed part replaced by U+FFFD, one per maximal subpart (the practice
/// the Unicode standard recommends, and Python's `errors="replace"` follows). Valid text is
/// returned as it is, without a copy.
[[nodiscard]] std::string to_valid_utf8(std::string text);

} // namespace ci
