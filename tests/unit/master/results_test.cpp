// The pure parts of serving /results: request targets checked into safe segments (hostile
// ones refused), content types, Range headers and directory listings (names escaped).

#include <array>
#include <chrono>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <fstream>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "master/results.h"
#include "master/results_retention.h"
#include "support/temp_dir.h"

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

namespace {

void make_build(const std::filesystem::path& dir, std::time_t mtime) {
    std::filesystem::create_directories(dir / "sub");
    std::ofstream(dir / "sub" / "file.txt") << "x";
    const std::array<timespec, 2> times{timespec{mtime, 0}, timespec{mtime, 0}};
    REQUIRE(::utimensat(AT_FDCWD, dir.c_str(), times.data(), 0) == 0);
}

} // namespace

TEST_CASE("results retention: BUILD directories older than the retention are deleted, no "
          "symbolic link followed") {
    using namespace std::chrono_literals;
    ci::test::TempDir tmp;
    const auto root = tmp.path() / "results";
    const auto now = std::chrono::system_clock::from_time_t(1'800'000'000);
    const auto day = std::time_t{86400};
    make_build(root / "pkg" / "master" / "1", 1'800'000'000 - 15 * day); // 15 days: old
    make_build(root / "pkg" / "master" / "2", 1'800'000'000 - 13 * day); // 13 days: kept
    make_build(root / "pkg" / "release%2F1" / "3", 1'800'000'000 - 20 * day);
    make_build(root / "docs" / "master" / "9", 1'800'000'000 - 1 * day);
    // A symbolic link to a directory outside, as old as any: removed as a link only.
    const auto outside = tmp.path() / "outside";
    make_build(outside, 1'800'000'000 - 100 * day);
    std::filesystem::create_directory_symlink(outside, root / "pkg" / "master" / "4");
    std::filesystem::create_directory_symlink(outside, root / "linked");
    // An old build holding a symbolic link out of the tree: the link goes, not its target.
    make_build(root / "pkg" / "master" / "5", 1'800'000'000 - 30 * day);
    std::filesystem::create_directory_symlink(outside, root / "pkg" / "master" / "5" / "out");
    make_build(root / "pkg" / "master" / "5", 1'800'000'000 - 30 * day); // the link touched it

    const auto report = ci::master::sweep_results(root, now, 14 * 24h);
    CHECK(report.deleted == 3);
    CHECK(report.failed == 0);
    CHECK_FALSE(std::filesystem::exists(root / "pkg" / "master" / "1"));
    CHECK_FALSE(std::filesystem::exists(root / "pkg" / "master" / "5"));
    CHECK(std::filesystem::exists(root / "pkg" / "master" / "2" / "sub" / "file.txt"));
    CHECK_FALSE(std::filesystem::exists(root / "pkg" / "release%2F1")); // left empty: removed
    CHECK(std::filesystem::exists(root / "docs" / "master" / "9"));
    CHECK(std::filesystem::is_symlink(root / "pkg" / "master" / "4")); // not a directory
    CHECK(std::filesystem::is_symlink(root / "linked"));
    CHECK(std::filesystem::exists(outside / "sub" / "file.txt")); // nothing followed

    // A missing tree is an empty one; a second sweep finds nothing more.
    CHECK(ci::master::sweep_results(tmp.path() / "none", now, 14 * 24h).deleted == 0);
    CHECK(ci::master::sweep_results(root, now, 14 * 24h).deleted == 0);
    // A day later build 2 (13 days old) is 14 days and a second: deleted.
    CHECK(ci::master::sweep_results(root, now + 24h + 1s, 14 * 24h).deleted == 1);
}

TEST_CASE("results retention: partial files of uploads not resumed are deleted after their age, "
          "never those in use; what is left is measured") {
    using namespace std::chrono_literals;
    ci::test::TempDir tmp;
    const auto root = tmp.path() / "results";
    const auto partials = root / ".partial";
    std::filesystem::create_directories(partials / "a-directory");
    const std::time_t now_t = 1'800'000'000;
    const auto now = std::chrono::system_clock::from_time_t(now_t);
    constexpr std::time_t hour = 3600;
    constexpr std::time_t day = 24 * hour;
    const auto file = [&](const std::string& name, std::size_t size, std::time_t mtime) {
        std::ofstream(partials / name) << std::string(size, 'p');
        const std::array<timespec, 2> times{timespec{mtime, 0}, timespec{mtime, 0}};
        REQUIRE(::utimensat(AT_FDCWD, (partials / name).c_str(), times.data(), 0) == 0);
    };
    file("aaaa-10", 10, now_t - 25 * hour); // 25 h untouched: deleted
    file("bbbb-5", 5, now_t - 48 * hour);   // older, but an open upload uses it: kept
    file("cccc-3", 3, now_t - 3600);        // written an hour ago: kept
    // A symbolic link to a file outside, as old: removed as a link, its target kept.
    const auto outside = tmp.path() / "outside.txt";
    std::ofstream(outside) << "keep me";
    std::filesystem::create_symlink(outside, partials / "dddd-7");
    const std::array<timespec, 2> old_times{timespec{now_t - 30 * hour, 0},
                                            timespec{now_t - 30 * hour, 0}};
    REQUIRE(::utimensat(
                AT_FDCWD, (partials / "dddd-7").c_str(), old_times.data(), AT_SYMLINK_NOFOLLOW) ==
            0);
    REQUIRE(::utimensat(AT_FDCWD, (partials / "a-directory").c_str(), old_times.data(), 0) == 0);

    const auto report = ci::master::sweep_partials(partials, now, 24h, {"bbbb-5"});
    CHECK(report.deleted == 2);
    CHECK(report.failed == 0);
    CHECK_FALSE(std::filesystem::exists(partials / "aaaa-10"));
    CHECK_FALSE(std::filesystem::is_symlink(partials / "dddd-7"));
    CHECK(std::filesystem::exists(outside));
    CHECK(std::filesystem::exists(partials / "bbbb-5"));
    CHECK(std::filesystem::exists(partials / "cccc-3"));
    CHECK(std::filesystem::is_directory(partials / "a-directory")); // not a partial file
    // Once no upload uses it, the old one goes too; a missing directory is an empty one.
    CHECK(ci::master::sweep_partials(partials, now, 24h, {}).deleted == 1);
    CHECK(ci::master::sweep_partials(tmp.path() / "none", now, 24h, {}).deleted == 0);

    // The results sweep measures what is left, .partial included; with retention 0 (`never`)
    // it deletes nothing, however old.
    make_build(root / "pkg" / "master" / "1", now_t - 400 * day); // sub/file.txt: 1 byte
    const auto kept = ci::master::sweep_results(root, now, 0s);
    CHECK(kept.deleted == 0);
    CHECK(kept.kept_bytes == 3 + 1);
    CHECK(std::filesystem::exists(root / "pkg" / "master" / "1" / "sub" / "file.txt"));
    const auto swept = ci::master::sweep_results(root, now, 14 * 24h);
    CHECK(swept.deleted == 1);
    CHECK(swept.kept_bytes == 3);
}
