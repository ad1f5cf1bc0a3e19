// The pure parts of serving /results: request targets checked into safe segments (hostile
// ones refused), content types, Range headers and directory listings (names escaped).

#include <doctest/doctest.h>

#include "master/results.h"

using ci::master::listing_html;
using ci::master::ListingEntry;
using ci::master::parse_range;
using ci::master::parse_results_target;
using ci::master::RangeRequest;
using ci::master::results_content_type;

TEST_CASE("results targets: segments decoded once, empty ones skipped, the query dropped") {
    auto path = parse_results_target("/results/pkg/main/12/a%20b.deb?x=1");
    REQUIRE(path);
    CHECK(path->segments == std::vector<std::string>{"pkg", "main", "12", "a b.deb"});
    CHECK_FALSE(path->trailing_slash);
    path = parse_results_target("/results//pkg///main/");
    REQUIRE(path);
    CHECK(path->segments == std::vector<std::string>{"pkg", "main"});
    CHECK(path->trailing_slash);
    path = parse_results_target("/results");
    REQUIRE(path);
    CHECK(path->segments.empty());
    // Decoded once only: "%252e%252e" is the literal name "%2e%2e", which is harmless.
    path = parse_results_target("/results/%252e%252e");
    REQUIRE(path);
    CHECK(path->segments == std::vector<std::string>{"%2e%2e"});
    CHECK(parse_results_target("/results/..%2e")); // "..." is a plain name
}

TEST_CASE("results targets: escapes, encoded or not, are refused") {
    for (const auto* hostile : {"/results/..",
                                "/results/a/../../etc/passwd",
                                "/results/%2e%2e/x",
                                "/results/%2E%2e",
                                "/results/.",
                                "/results/a%2f..%2f..%2fetc",
                                "/results/a%2Fb",
                                "/results/a%5cb",
                                "/results/a\\b",
                                "/results/a%00b",
                                "/results/a%0ab",
                                "/results/a%7fb",
                                "/results/a%zz",
                                "/results/a%2",
                                "/results/a%",
                                "/resultsx/a",
                                "/api/v1/builds",
                                "http://host/results/a"}) {
        CAPTURE(hostile);
        CHECK_FALSE(parse_results_target(hostile));
    }
}

TEST_CASE("results content types: by extension, apt's index names, octet-stream otherwise") {
    CHECK(results_content_type("index.html") == "text/html; charset=utf-8");
    CHECK(results_content_type("INDEX.HTM") == "text/html; charset=utf-8");
    CHECK(results_content_type("a.css") == "text/css; charset=utf-8");
    CHECK(results_content_type("a.js") == "text/javascript; charset=utf-8");
    CHECK(results_content_type("a.json") == "application/json");
    CHECK(results_content_type("a.txt") == "text/plain; charset=utf-8");
    CHECK(results_content_type("test.log") == "text/plain; charset=utf-8");
    CHECK(results_content_type("repomd.xml") == "application/xml");
    CHECK(results_content_type("a.svg") == "image/svg+xml");
    CHECK(results_content_type("a.png") == "image/png");
    CHECK(results_content_type("Packages.gz") == "application/gzip");
    CHECK(results_content_type("src.tar.gz") == "application/gzip");
    CHECK(results_content_type("a_1.0_amd64.deb") == "application/vnd.debian.binary-package");
    CHECK(results_content_type("a-1.0.x86_64.rpm") == "application/x-rpm");
    CHECK(results_content_type("a-1.0-py3-none-any.whl") == "application/zip");
    CHECK(results_content_type("Packages") == "text/plain; charset=utf-8");
    CHECK(results_content_type("Release") == "text/plain; charset=utf-8");
    CHECK(results_content_type("InRelease") == "text/plain; charset=utf-8");
    CHECK(results_content_type("binary") == "application/octet-stream");
    CHECK(results_content_type(".html") == "application/octet-stream"); // no name before it
    CHECK(results_content_type("a.exe") == "application/octet-stream");
}

TEST_CASE("results ranges: one range of bytes; others ignored; past the end unsatisfiable") {
    using Kind = RangeRequest::Kind;
    auto range = parse_range("bytes=0-99", 1000);
    CHECK(range.kind == Kind::Partial);
    CHECK(range.range == ci::master::ByteRange{0, 99});
    range = parse_range("bytes=900-", 1000);
    CHECK(range.kind == Kind::Partial);
    CHECK(range.range == ci::master::ByteRange{900, 999});
    range = parse_range("bytes=-100", 1000);
    CHECK(range.range == ci::master::ByteRange{900, 999});
    range = parse_range("bytes=-5000", 1000); // more than the file: all of it
    CHECK(range.range == ci::master::ByteRange{0, 999});
    range = parse_range("bytes=990-5000", 1000); // clamped to the end
    CHECK(range.range == ci::master::ByteRange{990, 999});
    CHECK(parse_range("bytes=1000-", 1000).kind == Kind::Unsatisfiable);
    CHECK(parse_range("bytes=0-", 0).kind == Kind::Unsatisfiable);
    CHECK(parse_range("bytes=-0", 10).kind == Kind::Unsatisfiable);
    CHECK(parse_range("", 1000).kind == Kind::Whole);
    CHECK(parse_range("bytes=0-1,5-6", 1000).kind == Kind::Whole);
    CHECK(parse_range("bytes=5-1", 1000).kind == Kind::Whole);
    CHECK(parse_range("items=0-1", 1000).kind == Kind::Whole);
    CHECK(parse_range("bytes=a-b", 1000).kind == Kind::Whole);
    CHECK(parse_range("bytes=99999999999999999999999-", 1000).kind == Kind::Whole);
}

TEST_CASE("results listings: escaped names, encoded links, directories first with a slash") {
    const auto html = listing_html("/results/pkg/",
                                   {ListingEntry{"b<script>.txt", false, 12, 0},
                                    ListingEntry{"a dir", true, 0, 86400},
                                    ListingEntry{"\"q\"&.deb", false, 5, 0}});
    CHECK(html.find("<title>Index of /results/pkg/</title>") != std::string::npos);
    CHECK(html.find("<a href=\"../\">") != std::string::npos);
    CHECK(html.find("<script>") == std::string::npos);
    CHECK(html.find("b&lt;script&gt;.txt") != std::string::npos);
    CHECK(html.find("href=\"b%3Cscript%3E.txt\"") != std::string::npos);
    CHECK(html.find("&quot;q&quot;&amp;.deb") != std::string::npos);
    CHECK(html.find("href=\"%22q%22%26.deb\"") != std::string::npos);
    CHECK(html.find("<a href=\"a%20dir/\">a dir/</a></td><td>-</td><td>1970-01-02 00:00:00") !=
          std::string::npos);
    CHECK(html.find("<td>12</td>") != std::string::npos);
    CHECK(html.find("a dir/") < html.find("&quot;q"));                     // directories first
    CHECK(listing_html("/results/", {}).find("../") == std::string::npos); // no parent at the root
}
