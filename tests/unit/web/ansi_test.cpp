// web/ansi.h: a terminal log as HTML lines: colours as classes, what a terminal finally shows of
// a line, escaping, U+FFFD for ill-formed UTF-8, state across chunks, hostile input.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/utf8.h"
#include "web/ansi.h"
#include "web/assets.h"

using ci::web::AnsiHtml;
using ci::web::AnsiStyle;

namespace {

using Lines = std::vector<std::pair<std::int64_t, std::string>>;

// The log fed in pieces of `piece` bytes (0: whole).
Lines render(std::string_view log, std::size_t piece = 0) {
    Lines out;
    AnsiHtml renderer;
    const AnsiHtml::LineSink sink = [&out](std::int64_t number, std::string_view html) {
        out.emplace_back(number, std::string(html));
    };
    if (piece == 0) {
        renderer.feed(log, sink);
    } else {
        for (std::size_t i = 0; i < log.size(); i += piece) {
            renderer.feed(log.substr(i, piece), sink);
        }
    }
    renderer.finish(sink);
    return out;
}

std::string one(std::string_view log) {
    const auto lines = render(log);
    REQUIRE(lines.size() == 1);
    return lines[0].second;
}

} // namespace

TEST_CASE("ansi: plain lines are numbered and escaped") {
    const auto lines = render("first\n<script>alert(1)</script>\n& \"q\" 'a'\nlast");
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == std::pair<std::int64_t, std::string>{1, "first"});
    CHECK(lines[1].second == "&lt;script&gt;alert(1)&lt;/script&gt;");
    CHECK(lines[2].second == "&amp; &quot;q&quot; &#39;a&#39;");
    CHECK(lines[3] == std::pair<std::int64_t, std::string>{4, "last"});
    CHECK(render("").empty());
    CHECK(render("\n\n").size() == 2);
}

TEST_CASE("ansi: SGR colours become classes") {
    CHECK(one("\x1b[31mred\x1b[0m plain") == "<span class=\"fg1\">red</span> plain");
    CHECK(one("\x1b[1;92mok\x1b[39m bold") ==
          "<span class=\"fg10 bold\">ok</span><span class=\"bold\"> bold</span>");
    CHECK(one("\x1b[44mx\x1b[104my\x1b[49mz") ==
          "<span class=\"bg4\">x</span><span class=\"bg12\">y</span>z");
    CHECK(one("\x1b[38;5;208mo\x1b[48;5;17mp") ==
          "<span class=\"fg208\">o</span><span class=\"fg208 bg17\">p</span>");
    // 24-bit colours: the nearest of the cube or the greys.
    CHECK(one("\x1b[38;2;255;0;0mr") == "<span class=\"fg196\">r</span>");
    CHECK(one("\x1b[48;2;128;128;128mg") == "<span class=\"bg244\">g</span>");
    CHECK(one("\x1b[38:2::0:0:255mb") == "<span class=\"fg21\">b</span>");
    CHECK(one("\x1b[3;4mi\x1b[23;24mj\x1b[2mk\x1b[22ml") ==
          "<span class=\"italic underline\">i</span>j<span class=\"faint\">k</span>l");
    CHECK(one("\x1b[31m\x1b[mreset") == "reset");
    // Out of range or malformed: nothing changes, nothing breaks.
    CHECK(one("\x1b[38;5;999mx\x1b[38;2;1mz") == "xz");
}

TEST_CASE("ansi: a style goes on over lines and is kept by cursors") {
    const auto lines = render("\x1b[1;31ma\nb\x1b[0m\nc");
    REQUIRE(lines.size() == 3);
    CHECK(lines[1].second == "<span class=\"fg1 bold\">b</span>");
    CHECK(lines[2].second == "c");

    AnsiStyle style;
    style.fg = 196;
    style.bg = 4;
    style.bold = true;
    style.underline = true;
    CHECK(style.sgr() == "1;4;38;5;196;48;5;4");
    CHECK(AnsiStyle::from_sgr(style.sgr()) == style);
    CHECK(AnsiStyle::from_sgr("") == AnsiStyle{});
    CHECK_FALSE(AnsiStyle::from_sgr("1;x").has_value());
    CHECK_FALSE(AnsiStyle::from_sgr(std::string(300, '1')).has_value());
    AnsiHtml resumed(40, style);
    Lines out;
    resumed.feed("z\n", [&](std::int64_t n, std::string_view html) { out.emplace_back(n, html); });
    CHECK(out == Lines{{40, "<span class=\"fg196 bg4 bold underline\">z</span>"}});
}

TEST_CASE("ansi: what a terminal finally shows of a line") {
    CHECK(one("10%\r20%\r100%") == "100%");
    CHECK(one("abcdef\rXY") == "XYcdef");
    CHECK(one("abcdef\r\x1b[Kdone") == "done");
    CHECK(one("abcdef\x1b[2K\rnew") == "new");
    CHECK(one("abc\x1b[1K!") == "   !");
    CHECK(one("abc\bX") == "abX");
    CHECK(one("a\x1b[3Cb") == "a   b");
    CHECK(one("abcdef\x1b[3GX\x1b[2DY") == "aYXdef");
    CHECK(one("line\r\n") == "line"); // CRLF
    CHECK(one("a\tb") == "a\tb");
    // Other lines, the screen, modes, titles, strings, charsets: dropped.
    CHECK(one("\x1b[2J\x1b[H\x1b[3Aa\x1b[?25lb\x1b]0;title\x07"
              "c\x1b]8;;http://x\x1b\\d") == "abcd");
    CHECK(one("\x1bP1$r\x1b\\e\x1b(Bf\x1b=g\x1b"
              "7h") == "efgh");
    CHECK(one(std::string("nul\0bel\x07"
                          "del\x7f",
                          12)) == "nulbeldel");
}

TEST_CASE("ansi: ill-formed UTF-8 becomes U+FFFD, as core/utf8.h replaces it") {
    const std::vector<std::string> inputs = {"caf\xc3\xa9 \xf0\x9f\x98\x80",
                                             "D\xe9v",
                                             "bad \xff\xfe bytes",
                                             "\xc0\xaf \xe0\x80\xaf \xed\xb2\x80",
                                             "\xf4\x90\x80\x80",
                                             "end \xe2\x82",
                                             "\x61\xf1\x80\x80\xe1\x80\xc2\x62\x80\x63\x80\xbf\x64",
                                             "\xe2\x82<"};
    for (const auto& input : inputs) {
        CAPTURE(input);
        auto expected = ci::to_valid_utf8(input);
        if (expected.ends_with("<")) {
            expected.replace(expected.size() - 1, 1, "&lt;");
        }
        for (const std::size_t piece : {0, 1, 2, 3}) {
            const auto lines = render(input, piece);
            REQUIRE(lines.size() == 1);
            CHECK(lines[0].second == expected);
            CHECK_FALSE(ci::first_invalid_utf8(lines[0].second).has_value());
        }
    }
}

TEST_CASE("ansi: a log cut into chunks anywhere renders as the whole log does") {
    const std::string log = "\x1b[1;31mred \xe2\x82\xac\x1b[0m\n"
                            "prog 10%\rprog 100%\x1b]0;t\x07\n"
                            "\x1b[38;2;0;255;0mgreen\x1b[m <b>\n"
                            "\x1b[38;5;33mtail \xf0\x9f\x98\x80";
    const auto whole = render(log);
    REQUIRE(whole.size() == 4);
    for (std::size_t piece = 1; piece <= log.size(); ++piece) {
        CAPTURE(piece);
        CHECK(render(log, piece) == whole);
    }
}

TEST_CASE("ansi: skip() moves style and line numbers on as feed() does") {
    const std::string before = "\x1b[32mgreen\nstill \x1b[1mbold\x1b]0;x\nline 3 \x1b[4";
    const std::string after = "4mblue bg\nnext\n";
    AnsiHtml fed;
    AnsiHtml skipped;
    fed.feed(before, [](std::int64_t, std::string_view) {});
    skipped.skip(before);
    CHECK(skipped.line() == fed.line());
    CHECK(skipped.line() == 3);
    CHECK_FALSE(skipped.at_line_start());
    Lines a;
    Lines b;
    fed.feed(after, [&](std::int64_t n, std::string_view html) { a.emplace_back(n, html); });
    skipped.feed(after, [&](std::int64_t n, std::string_view html) { b.emplace_back(n, html); });
    REQUIRE(a.size() == 2);
    CHECK(a[0].second == "<span class=\"fg2 bold\">line 3 </span>"
                         "<span class=\"fg2 bg4 bold\">blue bg</span>");
    // What skip() passed over on the line is not shown; the rest is, in the same style.
    CHECK(b[0].second == "<span class=\"fg2 bg4 bold\">blue bg</span>");
    CHECK(a[1] == b[1]);
    CHECK(skipped.at_line_start());
    CHECK(skipped.style() == fed.style());
    // A line start after escapes only is still a line start (a cursor may be taken there).
    AnsiHtml reset;
    reset.feed("x\n\x1b[0m", [](std::int64_t, std::string_view) {});
    CHECK(reset.at_line_start());
    Lines none;
    reset.finish([&](std::int64_t n, std::string_view html) { none.emplace_back(n, html); });
    CHECK(none.empty());
}

TEST_CASE("ansi: hostile input costs bounded memory and keeps the line numbers") {
    SUBCASE("a million SGR parameters") {
        std::string log = "\x1b[";
        for (int i = 0; i < 1000000; ++i) {
            log += "31;";
        }
        log += "1mtext\nnext";
        const auto lines = render(log, 4096);
        REQUIRE(lines.size() == 2);
        CHECK(lines[0].second == "text"); // too long: ignored whole
        CHECK(lines[1] == std::pair<std::int64_t, std::string>{2, "next"});
    }
    SUBCASE("unterminated sequences end at the newline") {
        const auto lines = render("a\x1b]0;title without end\nb\x1b[31;\nc\x1bP dcs\nd\x1b");
        REQUIRE(lines.size() == 4);
        CHECK(lines[0].second == "a");
        CHECK(lines[1].second == "b");
        CHECK(lines[2].second == "c");
        CHECK(lines[3].second == "d");
    }
    SUBCASE("a huge line keeps max_columns characters") {
        const std::string log(AnsiHtml::max_columns + 100, 'x');
        const auto lines = render(log + "\ny");
        REQUIRE(lines.size() == 2);
        CHECK(lines[0].second.starts_with(std::string(AnsiHtml::max_columns, 'x') + "<span"));
        CHECK(lines[0].second.find("100 more characters") != std::string::npos);
        CHECK(lines[1].second == "y");
    }
    SUBCASE("cursor moves far right stop at max_columns") {
        const auto html = one("\x1b[999999999Cx\x1b[999999999Gy");
        CHECK(html.size() < AnsiHtml::max_columns + 200);
    }
    SUBCASE("script tags in escapes and colours stay text") {
        CHECK(one("\x1b[31m<script>alert(1)</script>") ==
              "<span class=\"fg1\">&lt;script&gt;alert(1)&lt;/script&gt;</span>");
        CHECK(one("\x1b]8;;javascript:alert(1)\x1b\\<a>") == "&lt;a&gt;");
    }
}

TEST_CASE("ansi: the stylesheet covers every class") {
    const auto css = ci::web::ansi_stylesheet();
    CHECK(css.find(".log .fg0{color:#000000}") != std::string::npos);
    CHECK(css.find(".log .bg255{background-color:#eeeeee}") != std::string::npos);
    CHECK(css.find(".log .fg196{color:#ff0000}") != std::string::npos);
    CHECK(css.find(".log .bold{") != std::string::npos);
    // The build page's style sheet carries it as ansi_stylesheet() writes it (log.css was
    // written from it: regenerate that part when the palette changes).
    const auto* asset = ci::web::find_asset("log.css");
    REQUIRE(asset != nullptr);
    CHECK(asset->bytes.find(css) != std::string_view::npos);
}
