// web/log_view.h: the part of a long log the build page shows, rendered as the whole log would
// be, with a cursor a live reader resumes from; cursors parsed strictly.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "web/log_view.h"

using ci::web::LogCursor;
using ci::web::LogView;

namespace {

using Lines = std::vector<std::pair<std::int64_t, std::string>>;

// A log of `count` lines, some coloured, a style that goes over lines, some long ones.
std::string sample_log(int count) {
    std::string log;
    for (int i = 1; i <= count; ++i) {
        if (i % 7 == 0) {
            log += "\x1b[1;31m";
        }
        log += "line " + std::to_string(i) + (i % 13 == 0 ? std::string(300, '=') : "");
        if (i % 11 == 0) {
            log += "\x1b[0m <script>";
        }
        log += '\n';
    }
    return log;
}

// The log cut into chunks of `size` bytes: (first, next, text) as a store hands them out.
LogView view_of(std::string_view log, std::size_t size, LogView view) {
    std::int64_t sequence = 0;
    for (std::size_t i = 0; i < log.size(); i += size, ++sequence) {
        view.add(sequence, sequence + 1, log.substr(i, size));
    }
    return view;
}

} // namespace

TEST_CASE("log view: the last lines of a long log, as the whole log renders them") {
    const auto log = sample_log(5000);
    const auto whole = ci::web::ansi_lines(log);
    REQUIRE(whole.size() == 5000);
    for (const std::size_t chunk : {1000, 4096, 100000}) {
        CAPTURE(chunk);
        const auto shown = view_of(log, chunk, LogView(200, 1 << 20)).finish(true);
        CHECK(shown.total == 5000);
        CHECK(shown.bytes == static_cast<std::int64_t>(log.size()));
        CHECK_FALSE(shown.first_cut);
        CHECK(shown.lines == Lines(whole.end() - 200, whole.end()));
        CHECK(shown.partial.empty());
    }
}

TEST_CASE("log view: lines from a line on, for links to earlier lines") {
    const auto log = sample_log(3000);
    const auto whole = ci::web::ansi_lines(log);
    const auto shown = view_of(log, 777, LogView(100, 1 << 20, 1234)).finish(true);
    CHECK(shown.total == 3000);
    REQUIRE(shown.lines.size() == 100);
    CHECK(shown.lines == Lines(whole.begin() + 1233, whole.begin() + 1333));
    REQUIRE(shown.after.has_value());
    CHECK(shown.after->line == 1334);
}

TEST_CASE("log view: a byte budget caps what is shown") {
    const auto log = sample_log(2000);
    const auto whole = ci::web::ansi_lines(log);
    const auto shown = view_of(log, 500, LogView(2000, 4000)).finish(true);
    CHECK(shown.total == 2000);
    REQUIRE_FALSE(shown.lines.empty());
    CHECK(shown.lines.size() < 400);
    CHECK(shown.lines.back() == whole.back());
    CHECK(shown.lines.front() == whole[static_cast<std::size_t>(shown.lines.front().first - 1)]);

    // One line longer than the budget: its end, marked cut.
    const std::string huge(100000, 'x');
    const auto cut = view_of(huge, 1000, LogView(10, 5000)).finish(true);
    REQUIRE(cut.lines.size() == 1);
    CHECK(cut.first_cut);
    CHECK(cut.lines[0].second == std::string(5000, 'x'));
    CHECK(cut.total == 1);
}

TEST_CASE("log view: a running step's tail and the cursor a live reader goes on from") {
    const std::string log = "\x1b[32mgreen\nstill green\nhalf \x1b[1mbold\nprogress 10%\rprog";
    const std::vector<std::string> chunks = {
        "\x1b[32mgre", "en\nstill green\nha", "lf \x1b[1m", "bold\nprogress 10%", "\rprog"};
    LogView view(2, 1 << 20);
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        view.add(static_cast<std::int64_t>(i), static_cast<std::int64_t>(i) + 1, chunks[i]);
    }
    const auto shown = view.finish(false);
    CHECK(shown.total == 4);
    REQUIRE(shown.lines.size() == 1); // the line in progress is the second of the two
    CHECK(shown.lines[0].first == 3);
    CHECK(shown.partial == "<span class=\"fg2 bold\">progress 10%</span>");
    REQUIRE(shown.after.has_value());
    // After "bold\n" in chunk 3: line 4, green and bold.
    CHECK(shown.after->sequence == 3);
    CHECK(shown.after->offset == 5);
    CHECK(shown.after->line == 4);
    // Going on from there renders the rest as the whole log does.
    ci::web::AnsiHtml resumed(shown.after->line, shown.after->style);
    Lines rest;
    const ci::web::AnsiHtml::LineSink sink = [&](std::int64_t n, std::string_view html) {
        rest.emplace_back(n, html);
    };
    resumed.feed(chunks[3].substr(5), sink);
    resumed.feed(chunks[4] + "ress 100%\n", sink);
    CHECK(rest == Lines{{4, "<span class=\"fg2 bold\">progress 100%</span>"}});
    // Ended, the last line counts as a line ("prog" written over "prog").
    CHECK(view.finish(true).lines.back().second == "<span class=\"fg2 bold\">progress 10%</span>");
}

TEST_CASE("log view: the HTML of the lines has anchors and escapes nothing twice") {
    const auto shown = view_of("a <b>\n\x1b[31mred\n", 4, LogView(10, 1000)).finish(true);
    const auto html = ci::web::log_lines_html(3, shown);
    CHECK(html == "<span class=\"l\" id=\"step-3-1\"><a class=\"n\" href=\"#step-3-1\">1</a>"
                  "a &lt;b&gt;\n</span>"
                  "<span class=\"l\" id=\"step-3-2\"><a class=\"n\" href=\"#step-3-2\">2</a>"
                  "<span class=\"fg1\">red</span>\n</span><span class=\"l partial\"></span>");
    const auto empty = LogView(10, 1000).finish(false);
    CHECK(empty.total == 0);
    CHECK(empty.lines.empty());
    REQUIRE(empty.after.has_value());
    CHECK(*empty.after == LogCursor{});
}

TEST_CASE("log view: cursors are parsed strictly") {
    CHECK(LogCursor::parse("12")->sequence == 12);
    const auto full = LogCursor::parse("3.40.7.1;38;5;2");
    REQUIRE(full.has_value());
    CHECK(full->offset == 40);
    CHECK(full->line == 7);
    CHECK(full->style.bold);
    CHECK(full->text() == "3.40.7.1;38;5;2");
    CHECK(LogCursor::parse("3.0.1.").has_value());
    for (const char* bad : {"",
                            "-1",
                            "+1",
                            "1.2",
                            "1.2.3",
                            "1.2.0.",
                            "1.2.3.x",
                            "a.1.1.",
                            "99999999999999999999",
                            "1.2.3.4.5"}) {
        CAPTURE(bad);
        CHECK_FALSE(LogCursor::parse(bad).has_value());
    }
}
