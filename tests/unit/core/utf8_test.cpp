// core/utf8.h: validity by RFC 3629, and replacement by U+FFFD per maximal subpart, as Python's
// bytes.decode("utf-8", errors="replace") does.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/utf8.h"

namespace {

const std::string fffd = "\xef\xbf\xbd";

} // namespace

TEST_CASE("utf8: valid text is kept as it is") {
    for (const std::string& text : {std::string(),
                                    std::string("plain ASCII\n\t"),
                                    std::string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                                    std::string("\xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf"),
                                    std::string("nul \0 inside", 12)}) {
        CAPTURE(text);
        CHECK_FALSE(ci::first_invalid_utf8(text).has_value());
        CHECK(ci::to_valid_utf8(text) == text);
    }
}

TEST_CASE("utf8: each ill-formed part becomes one U+FFFD, as Python replaces it") {
    // Expected values from Python 3: bytes.decode("utf-8", errors="replace").
    struct Case {
        std::string in;
        std::string out;
        std::size_t first;
    };
    const std::vector<Case> cases = {
        {"D\xe9v", "D" + fffd + "v", 1},                            // a Latin-1 byte
        {"bad \xff\xfe bytes", "bad " + fffd + fffd + " bytes", 4}, // never leads
        {"\xc3(", fffd + "(", 0},                           // a lead without its continuation
        {"\xc0\xaf", fffd + fffd, 0},                       // an overlong '/'
        {"\xe0\x80\xaf", fffd + fffd + fffd, 0},            // overlong, three bytes
        {"\xed\xb2\x80", fffd + fffd + fffd, 0},            // a surrogate (JSON's "\udc80")
        {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd, 0}, // past U+10FFFF
        {"end \xe2\x82", "end " + fffd, 4},                 // cut short: one U+FFFD
        {"\xf0\x9f\x98", fffd, 0},                          // cut short, four bytes
        // Unicode 15, section 3.9, table 3-8's example.
        {"\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
         "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d",
         1},
    };
    for (const auto& c : cases) {
        CAPTURE(c.in);
        CHECK(ci::first_invalid_utf8(c.in) == c.first);
        CHECK(ci::to_valid_utf8(c.in) == c.out);
        CHECK_FALSE(ci::first_invalid_utf8(ci::to_valid_utf8(c.in)).has_value());
    }
}
