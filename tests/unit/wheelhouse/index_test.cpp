// Reading wheels (zip archives made here with libzip) and the index pages built from them.

#include <algorithm>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <rapidjson/document.h>
#include <zip.h>

#include <ci/core/crypto.h>
#include <ci/wheelhouse/index.h>

#include "core/utf8.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

// Writes a zip archive holding `files` (name -> content).
void write_zip(const std::filesystem::path& path,
               const std::vector<std::pair<std::string, std::string>>& files) {
    int error = 0;
    zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    REQUIRE(archive != nullptr);
    for (const auto& [name, content] : files) {
        zip_source_t* source = zip_source_buffer(archive, content.data(), content.size(), 0);
        REQUIRE(source != nullptr);
        const zip_int64_t index = zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8);
        REQUIRE(index >= 0);
        // Stored, not deflated, so that a test can find and damage an entry's bytes.
        REQUIRE(zip_set_file_compression(
                    archive, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) == 0);
    }
    REQUIRE(zip_close(archive) == 0);
}

std::string
metadata(const std::string& name, const std::string& version, const std::string& extra = "") {
    return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n" + extra +
           "Summary: a test\n  continued summary line\n\nRequires-Python: not a header\n";
}

ci::wheelhouse::WheelEntry entry(const std::string& file_name,
                                 std::optional<std::string> requires_python = std::nullopt) {
    auto name = ci::wheelhouse::parse_wheel_name(file_name);
    REQUIRE(name.has_value());
    ci::wheelhouse::WheelEntry out;
    out.file_name = file_name;
    out.name = *name;
    out.size = file_name.size();
    out.sha256 = ci::crypto::to_hex(ci::crypto::sha256(file_name));
    out.metadata_sha256 = ci::crypto::to_hex(ci::crypto::sha256("metadata of " + file_name));
    out.requires_python = std::move(requires_python);
    return out;
}

const ci::wheelhouse::Page& page(const std::vector<ci::wheelhouse::Page>& pages,
                                 const std::string& key) {
    const auto found = std::ranges::find(pages, key, &ci::wheelhouse::Page::key);
    REQUIRE_MESSAGE(found != pages.end(), key);
    return *found;
}

} // namespace

TEST_CASE("wheelhouse: a wheel's name, hash and METADATA are read, and checked") {
    ci::test::TempDir dir;
    const auto path = dir / "pkg_a-1.0-py3-none-any.whl";
    const std::string meta = metadata("pkg-a", "1.0", "Requires-Python: >=3.7, <4\n");
    write_zip(path,
              {{"pkg_a/__init__.py", "VALUE = 1\n"},
               {"pkg_a-1.0.dist-info/METADATA", meta},
               {"pkg_a-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n"}});
    auto wheel = ci::wheelhouse::read_wheel(path);
    REQUIRE_OK(wheel);
    CHECK(wheel->entry.file_name == "pkg_a-1.0-py3-none-any.whl");
    CHECK(wheel->entry.name.distribution == "pkg_a");
    CHECK(wheel->entry.requires_python == ">=3.7, <4");
    CHECK(wheel->metadata == meta);
    CHECK(wheel->entry.metadata_sha256 == ci::crypto::to_hex(ci::crypto::sha256(meta)));
    CHECK(wheel->entry.sha256 == ci::crypto::to_hex(ci::crypto::sha256(ci::test::read_file(path))));
    CHECK(wheel->entry.size == std::filesystem::file_size(path));

    const auto bad = [&](const std::string& file_name,
                         const std::vector<std::pair<std::string, std::string>>& files,
                         const std::string& why) {
        CAPTURE(file_name);
        const auto bad_path = dir / file_name;
        write_zip(bad_path, files);
        auto result = ci::wheelhouse::read_wheel(bad_path);
        REQUIRE_FALSE(result.has_value());
        CHECK(result.error().message.find(why) != std::string::npos);
        CHECK(result.error().message.find(bad_path.string()) != std::string::npos);
    };
    bad("nometa-1.0-py3-none-any.whl",
        {{"nometa/__init__.py", ""}},
        "no nometa-1.0.dist-info/METADATA");
    bad("other-1.0-py3-none-any.whl",
        {{"other-1.0.dist-info/METADATA", metadata("different", "1.0")}},
        "METADATA names 'different'");
    bad("ver-1.0-py3-none-any.whl",
        {{"ver-1.0.dist-info/METADATA", metadata("ver", "2.0")}},
        "METADATA says version '2.0'");
    bad("noname-1.0-py3-none-any.whl",
        {{"noname-1.0.dist-info/METADATA", "Metadata-Version: 2.1\n"}},
        "no Name or no Version");
    bad("badname.whl", {{"x", "y"}}, "PEP 427");

    ci::test::write_file(dir / "junk-1.0-py3-none-any.whl", "this is not a zip archive");
    auto junk = ci::wheelhouse::read_wheel(dir / "junk-1.0-py3-none-any.whl");
    REQUIRE_FALSE(junk.has_value());
    CHECK(junk.error().message.find("not a readable zip archive") != std::string::npos);

    // A wheel whose bytes were damaged after it was written: METADATA's CRC no longer holds,
    // or the archive's structure no longer does.
    std::string bytes = ci::test::read_file(path);
    const std::size_t at = bytes.find("Requires-Python: >=3.7");
    REQUIRE(at != std::string::npos);
    bytes[at] = 'X';
    ci::test::write_file(dir / "corrupt-1.0-py3-none-any.whl", bytes);
    auto corrupt = ci::wheelhouse::read_wheel(dir / "corrupt-1.0-py3-none-any.whl");
    REQUIRE_FALSE(corrupt.has_value());
    CHECK((corrupt.error().message.find("corrupt") != std::string::npos ||
           corrupt.error().message.find("not a readable zip") != std::string::npos));
    ci::test::write_file(dir / "cut-1.0-py3-none-any.whl", bytes.substr(0, bytes.size() / 2));
    CHECK_FALSE(ci::wheelhouse::read_wheel(dir / "cut-1.0-py3-none-any.whl").has_value());
}

TEST_CASE("wheelhouse: the index pages, in upload order, with hashes, markers and metadata") {
    const std::vector<ci::wheelhouse::WheelEntry> wheels = {
        entry("Pkg_A-1.10-py3-none-any.whl", ">=3.7,<4"),
        entry("pkg_b-2.0-py3-none-any.whl"),
        entry("Pkg_A-1.9-py3-none-any.whl", ">=3.7,<4"),
        entry("Pkg_A-1.10rc1-py3-none-any.whl", ">=3.7,<4"),
        entry("pkg_b-1.0+doc1-py3-none-any.whl"),
    };
    const auto pages = ci::wheelhouse::build_index(wheels);
    std::vector<std::string> keys;
    keys.reserve(pages.size());
    for (const auto& p : pages) {
        keys.push_back(p.key);
    }
    CHECK(keys == std::vector<std::string>{"simple/pkg-a/",
                                           "simple/pkg-a/index.html",
                                           "simple/pkg-a/index.json",
                                           "simple/pkg-b/",
                                           "simple/pkg-b/index.html",
                                           "simple/pkg-b/index.json",
                                           "simple/",
                                           "simple/index.html",
                                           "simple/index.json",
                                           "index"});

    const auto& a = page(pages, "simple/pkg-a/");
    CHECK(a.content_type == "text/html");
    CHECK(a.body == page(pages, "simple/pkg-a/index.html").body);
    const auto pos = [&](const std::string& text) { return a.body.find(text); };
    // PEP 440 order: 1.9 < 1.10rc1 < 1.10.
    CHECK(pos("Pkg_A-1.9-") < pos("Pkg_A-1.10rc1-"));
    CHECK(pos("Pkg_A-1.10rc1-") < pos("Pkg_A-1.10-"));
    const auto& first = wheels[2];
    CHECK(a.body.find(
              "<a href=\"../../Pkg_A-1.9-py3-none-any.whl#sha256=" + first.sha256 +
              "\" data-requires-python=\"&gt;=3.7,&lt;4\" data-dist-info-metadata=\"sha256=" +
              first.metadata_sha256 + "\" data-core-metadata=\"sha256=" + first.metadata_sha256 +
              "\">Pkg_A-1.9-py3-none-any.whl</a>") != std::string::npos);
    CHECK(a.body.find("<meta name=\"pypi:repository-version\" content=\"1.1\">") !=
          std::string::npos);

    const auto& b = page(pages, "simple/pkg-b/");
    CHECK(b.body.find("data-requires-python") == std::string::npos);
    CHECK(b.body.find("href=\"../../pkg_b-1.0%2Bdoc1-py3-none-any.whl#sha256=") !=
          std::string::npos);

    const auto& root = page(pages, "simple/");
    CHECK(root.body.find("<a href=\"pkg-a/\">pkg-a</a>") != std::string::npos);
    CHECK(root.body.find("<a href=\"pkg-b/\">pkg-b</a>") != std::string::npos);

    const auto& flat = page(pages, "index");
    CHECK(flat.body.find("<a href=\"Pkg_A-1.9-py3-none-any.whl#sha256=" + first.sha256) !=
          std::string::npos);
    for (const auto& wheel : wheels) {
        CHECK(flat.body.find(">" + wheel.file_name + "</a>") != std::string::npos);
    }

    rapidjson::Document json;
    json.Parse(page(pages, "simple/pkg-a/index.json").body.c_str());
    REQUIRE_FALSE(json.HasParseError());
    CHECK(std::string(json["meta"]["api-version"].GetString()) == "1.1");
    CHECK(std::string(json["name"].GetString()) == "pkg-a");
    REQUIRE(json["files"].Size() == 3);
    const auto& file = json["files"][0];
    CHECK(std::string(file["filename"].GetString()) == "Pkg_A-1.9-py3-none-any.whl");
    CHECK(std::string(file["hashes"]["sha256"].GetString()) == first.sha256);
    CHECK(std::string(file["requires-python"].GetString()) == ">=3.7,<4");
    CHECK(std::string(file["core-metadata"]["sha256"].GetString()) == first.metadata_sha256);
    CHECK(file["size"].GetUint64() == first.size);
    REQUIRE(json["versions"].Size() == 3);
    CHECK(std::string(json["versions"][0].GetString()) == "1.9");
    CHECK(std::string(json["versions"][2].GetString()) == "1.10");
    rapidjson::Document root_json;
    root_json.Parse(page(pages, "simple/index.json").body.c_str());
    REQUIRE_FALSE(root_json.HasParseError());
    CHECK(root_json["projects"].Size() == 2);

    CHECK(ci::wheelhouse::build_index(std::vector<ci::wheelhouse::WheelEntry>{}).size() ==
          4); // an empty wheelhouse still has pages
}

TEST_CASE("wheelhouse: pip.conf") {
    // The escaping itself is core/html.h's (tests/unit/core/html_test.cpp).
    const std::string conf = ci::wheelhouse::pip_conf("https://s3-us-west-2.amazonaws.com/w/f20/");
    CHECK(conf.find("[global]\nfind-links = https://s3-us-west-2.amazonaws.com/w/f20/index\n") !=
          std::string::npos);
}

// Issue 15: what METADATA says reaches the pages as valid UTF-8, its control characters escaped.
TEST_CASE("wheelhouse: invalid UTF-8 and control characters from METADATA stay out of the pages") {
    ci::test::TempDir dir;
    const auto path = dir / "pkg_u-1.0-py3-none-any.whl";
    write_zip(path,
              {{"pkg_u-1.0.dist-info/METADATA",
                metadata("pkg-u", "1.0", "Requires-Python: >=3\xff\x01\"<x>\n")}});
    auto wheel = ci::wheelhouse::read_wheel(path);
    REQUIRE_OK(wheel);
    const auto pages = ci::wheelhouse::build_index(std::vector{wheel->entry});
    rapidjson::Document json;
    const std::string& body = page(pages, "simple/pkg-u/index.json").body;
    json.Parse<rapidjson::kParseValidateEncodingFlag>(body.c_str());
    REQUIRE_FALSE(json.HasParseError());
    CHECK(std::string(json["files"][0]["requires-python"].GetString()) ==
          ">=3\xEF\xBF\xBD\x01\"<x>");
    const std::string& html = page(pages, "simple/pkg-u/index.html").body;
    CHECK(html.find("data-requires-python=\"&gt;=3\xEF\xBF\xBD&#x1;&quot;&lt;x&gt;\"") !=
          std::string::npos);
    CHECK(ci::first_invalid_utf8(html) == std::nullopt);
}
