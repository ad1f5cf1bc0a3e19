// The one HTML escape of libci (core/html.h): what the web UI's logs and templates, the results
// listings and the wheelhouse's PEP 503 pages write.

#include <string>

#include <doctest/doctest.h>

#include "core/html.h"

using ci::append_html_escaped;
using ci::html_escape;

TEST_CASE("html_escape: the five characters of HTML syntax become entities") {
    CHECK(html_escape("<a href=\"x\">'&'</a>") ==
          "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    CHECK(html_escape("plain text, caf\xc3\xa9 \xe2\x98\x83") ==
          "plain text, caf\xc3\xa9 \xe2\x98\x83");
    CHECK(html_escape("").empty());
}

TEST_CASE("html_escape: controls but tab, LF and CR as references; NUL, invalid UTF-8: U+FFFD") {
    CHECK(html_escape(std::string("a\x01\tb\x7f\n\x00z\x1b\r", 10)) ==
          "a&#x1;\tb&#x7f;\n\xEF\xBF\xBDz&#x1b;\r");
    CHECK(html_escape("x\xff\xc0y") == "x\xEF\xBF\xBD\xEF\xBF\xBDy");
    CHECK(html_escape("<\xff>") == "&lt;\xEF\xBF\xBD&gt;");
}

TEST_CASE("append_html_escaped appends to what `out` holds") {
    std::string out = "<b>";
    append_html_escaped(out, "&");
    append_html_escaped(out, "\xe2\x98\x83");
    CHECK(out == "<b>&amp;\xe2\x98\x83");
}
