// Percent-decoding (ci::http::append_uri_decoded, uri_decode): the one decoder that the server
// uses for paths and queries and the signer for query parameters.

#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include <ci/http/request.h>

using namespace std::string_literals;
using namespace std::string_view_literals;

namespace {

std::string path_decoded(std::string_view text) {
    std::string out;
    ci::http::append_uri_decoded(out, text, false);
    return out;
}

std::string query_decoded(std::string_view text) {
    std::string out;
    ci::http::append_uri_decoded(out, text, true);
    return out;
}

} // namespace

TEST_CASE("http: percent-decoding decodes %XX in either case") {
    CHECK(path_decoded("a%20b%2fc%2Fd") == "a b/c/d");
    CHECK(path_decoded("%41%4a%4A%7e") == "AJJ~");
    CHECK(path_decoded("plain/path-_.~") == "plain/path-_.~");
    CHECK(path_decoded("").empty());
    CHECK(path_decoded("%25") == "%");
    CHECK(path_decoded("%2541") == "%41"); // decoded once, not twice
    CHECK(ci::http::uri_decode("a%20b%2fc") == "a b/c");
}

TEST_CASE("http: a malformed %-sequence is kept as it is") {
    CHECK(path_decoded("%") == "%");
    CHECK(path_decoded("a%") == "a%");
    CHECK(path_decoded("%4") == "%4");
    CHECK(path_decoded("a%4") == "a%4");
    CHECK(path_decoded("%zz") == "%zz");
    CHECK(path_decoded("%4z") == "%4z");
    CHECK(path_decoded("%z4") == "%z4");
    CHECK(path_decoded("%%41") == "%A"); // the first '%' is kept, the second starts %41
    CHECK(path_decoded("%g0%0g") == "%g0%0g");
    CHECK(ci::http::uri_decode("a%20b%2fc%zz%4") == "a b/c%zz%4");
}

TEST_CASE("http: %00 and bytes above 0x7f decode to themselves, with no UTF-8 check") {
    CHECK(path_decoded("a%00b") == "a\0b"s);
    CHECK(path_decoded("%C3%A9t%C3%A9") == "\xC3\xA9t\xC3\xA9");       // "été"
    CHECK(path_decoded("%E2%82%AC") == "\xE2\x82\xAC");                // "€"
    CHECK(path_decoded("%FF%fe") == "\xFF\xFE");                       // not UTF-8: kept as bytes
    CHECK(path_decoded("\xC3\xA9%20\xC3\xA9") == "\xC3\xA9 \xC3\xA9"); // raw UTF-8 passes through
}

TEST_CASE("http: '+' is a space in a query, a '+' in a path") {
    CHECK(query_decoded("a+b") == "a b");
    CHECK(query_decoded("+") == " ");
    CHECK(query_decoded("x%2By+z") == "x+y z"); // an encoded '+' stays '+'
    CHECK(path_decoded("a+b") == "a+b");
    CHECK(ci::http::uri_decode("a+b") == "a+b");
    CHECK(query_decoded("%+") == "% ");
}

TEST_CASE("http: append_uri_decoded appends to what `out` holds") {
    std::string out = "prefix:";
    ci::http::append_uri_decoded(out, "a%20b", false);
    ci::http::append_uri_decoded(out, "+c", true);
    CHECK(out == "prefix:a b c");
}

TEST_CASE("http: uri_reference_encode encodes what a URI does not allow and keeps the rest") {
    using ci::http::uri_reference_encode;
    // Already a URI: unchanged (reserved characters and %XX escapes kept).
    for (const auto* kept : {"/builders/tests?branch=feature%2Fx&limit=5#top",
                             "/a/b;c=d,e'f(g)*h!$i+j@k:l[m]~n_o.p-q",
                             ""}) {
        CAPTURE(kept);
        CHECK(uri_reference_encode(kept) == kept);
    }
    CHECK(uri_reference_encode("/b?branch=a b") == "/b?branch=a%20b");
    CHECK(uri_reference_encode("/t\xc3\xa9st") == "/t%C3%A9st");
    CHECK(uri_reference_encode("/x\r\nSet-Cookie: a") == "/x%0D%0ASet-Cookie:%20a");
    CHECK(uri_reference_encode("\"<>\\^`{|}\x7f") == "%22%3C%3E%5C%5E%60%7B%7C%7D%7F");
    CHECK(uri_reference_encode("100%") == "100%25");
    CHECK(uri_reference_encode("%4") == "%254");
    CHECK(uri_reference_encode("%zz%41") == "%25zz%41");
    CHECK(uri_reference_encode("a\0b"s) == "a%00b");
    // Encoding twice changes nothing more.
    const auto once = uri_reference_encode("/b?x=a b%\xff");
    CHECK(uri_reference_encode(once) == once);
}
