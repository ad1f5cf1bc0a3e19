// core/ascii.h: ASCII case folding, checked over every byte.

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "core/ascii.h"

using namespace std::string_literals;
using namespace std::string_view_literals;

// Usable where a constant is needed (header-name tables, switch labels).
static_assert(ci::ascii_lower('Q') == 'q');
static_assert(ci::ascii_iequals("Content-Length", "content-LENGTH"));

TEST_CASE("ascii: ascii_lower folds A-Z and keeps every other byte") {
    for (int byte = 0; byte < 256; ++byte) {
        const char c = static_cast<char>(byte);
        CAPTURE(byte);
        const bool upper = byte >= 'A' && byte <= 'Z';
        CHECK(ci::ascii_lower(c) == (upper ? static_cast<char>(byte + ('a' - 'A')) : c));
    }
    // The bytes beside the alphabet, where a range check that is off by one shows.
    CHECK(ci::ascii_lower('@') == '@');
    CHECK(ci::ascii_lower('[') == '[');
    CHECK(ci::ascii_lower('`') == '`');
    CHECK(ci::ascii_lower('{') == '{');
}

TEST_CASE("ascii: strings are lower-cased whole, bytes above 0x7f kept") {
    // "ÄÖ" in UTF-8 and in Latin-1: a Latin-1 C locale's tolower would fold the latter.
    const std::string text = "Content-TYPE: Text/HTML; \xC3\x84\xC3\x96 \xC4\xD6 \x7F\x80\xFF"s;
    const std::string expected = "content-type: text/html; \xC3\x84\xC3\x96 \xC4\xD6 \x7F\x80\xFF"s;
    CHECK(ci::ascii_lower(std::string_view(text)) == expected);
    std::string copy = text;
    ci::ascii_lower_in_place(copy);
    CHECK(copy == expected);
    CHECK(ci::ascii_lower(""sv).empty());
    // Embedded NUL bytes are bytes like any other.
    CHECK(ci::ascii_lower("A\0B"sv) == "a\0b"sv);
}

TEST_CASE("ascii: ascii_iequals ignores the case of letters only") {
    CHECK(ci::ascii_iequals("", ""));
    CHECK(ci::ascii_iequals("X-Hub-Signature-256", "x-hub-signature-256"));
    CHECK(ci::ascii_iequals("WARNING", "warning"));
    CHECK_FALSE(ci::ascii_iequals("warn", "warning"));
    CHECK_FALSE(ci::ascii_iequals("warning", "warn"));
    CHECK_FALSE(ci::ascii_iequals("a", "b"));
    // Pairs that differ only in bit 0x20 but are not letters: folding by OR-ing 0x20 would call
    // them equal.
    CHECK_FALSE(ci::ascii_iequals("@", "`"));
    CHECK_FALSE(ci::ascii_iequals("[", "{"));
    CHECK_FALSE(ci::ascii_iequals("^", "~"));
    CHECK_FALSE(ci::ascii_iequals("\x01", "!"));
    // "Ä" against "ä" in UTF-8 (second bytes 0x84 and 0xA4) and in Latin-1 (0xC4 and 0xE4).
    CHECK_FALSE(ci::ascii_iequals("\xC3\x84", "\xC3\xA4"));
    CHECK_FALSE(ci::ascii_iequals("\xC4", "\xE4"));
    CHECK(ci::ascii_iequals("\xC3\x84X", "\xC3\x84x"));
}
