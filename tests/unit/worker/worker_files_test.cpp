// Worker files on the wire and on the worker's disk: the WorkerFile message carries any bytes
// (hex) and refuses what is malformed or too large; write_worker_file writes 0600 files
// atomically, creates missing directories 0700, and refuses symbolic links and escapes.

#include <algorithm>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <variant>
#include <vector>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <ci/config/worker_files.h>

#include "master/protocol.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"
#include "worker/files.h"

namespace protocol = ci::master::protocol;
namespace fs = std::filesystem;
using ci::worker::write_worker_file;

namespace {

unsigned mode_of(const fs::path& path) {
    struct stat info {};
    REQUIRE(::lstat(path.c_str(), &info) == 0);
    return info.st_mode & 07777U;
}

// The entries of `dir`, to see that no temporary file was left behind.
std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) {
        names.push_back(entry.path().filename().string());
    }
    std::ranges::sort(names);
    return names;
}

} // namespace

TEST_CASE("WorkerFile: every byte value round-trips; bad hex and oversized content refused") {
    std::string content;
    for (int i = 0; i < 256; ++i) {
        content.push_back(static_cast<char>(i));
    }
    const auto line = protocol::encode(protocol::WorkerFile{"/home/ci/.ssh/id_rsa", content});
    CHECK(line.back() == '\n');
    CHECK(line.find('\n') == line.size() - 1); // one line, nothing after it
    CHECK(line.starts_with(R"({"type":"worker_file","path":"/home/ci/.ssh/id_rsa","hex":"000102)"));
    auto decoded = protocol::decode(line);
    REQUIRE_OK(decoded);
    const auto* file = std::get_if<protocol::WorkerFile>(&*decoded);
    REQUIRE(file != nullptr);
    CHECK(file->path == "/home/ci/.ssh/id_rsa");
    CHECK(file->content == content);
    CHECK(protocol::following_bytes(*decoded) == nullptr);

    // An empty file is a file.
    decoded = protocol::decode(protocol::encode(protocol::WorkerFile{"empty", ""}));
    REQUIRE_OK(decoded);
    CHECK(std::get<protocol::WorkerFile>(*decoded).content.empty());

    // The largest file fits in a line.
    const std::string largest(ci::config::max_worker_file_size, '\xff');
    const auto big = protocol::encode(protocol::WorkerFile{"big", largest});
    CHECK(big.size() <= protocol::max_line);
    decoded = protocol::decode(big);
    REQUIRE_OK(decoded);
    CHECK(std::get<protocol::WorkerFile>(*decoded).content == largest);

    for (const char* bad : {R"({"type":"worker_file","path":"a","hex":"abc"})",
                            R"({"type":"worker_file","path":"a","hex":"zz"})",
                            R"({"type":"worker_file","path":"a","hex":"0g"})",
                            R"({"type":"worker_file","path":"a","hex":5})",
                            R"({"type":"worker_file","path":"a"})",
                            R"({"type":"worker_file","hex":"00"})"}) {
        INFO(bad);
        const auto refused = protocol::decode(bad);
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
    }
    const std::string too_big = R"({"type":"worker_file","path":"a","hex":")" +
                                std::string(2 * (ci::config::max_worker_file_size + 1), '0') +
                                "\"}";
    CHECK_FALSE(protocol::decode(too_big));
}

TEST_CASE("write_worker_file: 0600 files, 0700 new directories, atomic replacement") {
    const ci::test::TempDir dir;
    const auto root = dir / "work";

    REQUIRE_OK(write_worker_file(root, "secrets/deep/token", "one\n"));
    CHECK(ci::test::read_file(root / "secrets/deep/token") == "one\n");
    CHECK(mode_of(root / "secrets/deep/token") == 0600U);
    CHECK(mode_of(root / "secrets") == 0700U);
    CHECK(mode_of(root / "secrets/deep") == 0700U);

    // Replaced whole, and an existing file's loose mode does not survive.
    ::chmod((root / "secrets/deep/token").c_str(), 0644);
    REQUIRE_OK(write_worker_file(root, "secrets/deep/token", "two"));
    CHECK(ci::test::read_file(root / "secrets/deep/token") == "two");
    CHECK(mode_of(root / "secrets/deep/token") == 0600U);
    CHECK(names_in(root / "secrets/deep") == std::vector<std::string>{"token"});

    // An existing directory keeps its mode.
    fs::create_directories(root / "open");
    ::chmod((root / "open").c_str(), 0755);
    REQUIRE_OK(write_worker_file(root, "open/f", std::string("\0bin\xff", 5)));
    CHECK(mode_of(root / "open") == 0755U);
    CHECK(ci::test::read_file(root / "open/f") == std::string("\0bin\xff", 5));

    // Absolute destinations.
    const auto absolute = dir / "abs/x/key";
    REQUIRE_OK(write_worker_file(root, absolute.string(), "k"));
    CHECK(ci::test::read_file(absolute) == "k");
    CHECK(mode_of(absolute) == 0600U);
}

TEST_CASE("write_worker_file refuses symbolic links, escapes and directories") {
    const ci::test::TempDir dir;
    const auto root = dir / "work";
    fs::create_directories(root);
    fs::create_directories(dir / "outside");
    ci::test::write_file(dir / "outside/target", "untouched");

    SUBCASE("a link as a directory on the way") {
        fs::create_directory_symlink(dir / "outside", root / "link");
        const auto refused = write_worker_file(root, "link/target", "evil");
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(refused.error().message.find("symbolic link") != std::string::npos);
        CHECK(refused.error().message.find("evil") == std::string::npos);
        CHECK(names_in(dir / "outside") == std::vector<std::string>{"target"});
        // Also in an absolute path.
        CHECK_FALSE(write_worker_file(root, (root / "link/new").string(), "evil"));
        CHECK(names_in(dir / "outside") == std::vector<std::string>{"target"});
    }
    SUBCASE("a link as the file") {
        fs::create_symlink(dir / "outside/target", root / "token");
        const auto refused = write_worker_file(root, "token", "evil");
        REQUIRE_FALSE(refused);
        CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(ci::test::read_file(dir / "outside/target") == "untouched");
        CHECK(fs::is_symlink(root / "token"));
    }
    SUBCASE("a directory as the file") {
        fs::create_directories(root / "d");
        CHECK_FALSE(write_worker_file(root, "d", "x"));
        CHECK(fs::is_directory(root / "d"));
    }
    SUBCASE("a file on the way") {
        ci::test::write_file(root / "f", "file");
        CHECK_FALSE(write_worker_file(root, "f/x", "x"));
        CHECK(ci::test::read_file(root / "f") == "file");
    }
    SUBCASE("escapes") {
        for (const char* bad : {"../outside/target", "a/../../outside/target", "", "a//b", "/"}) {
            INFO(bad);
            const auto refused = write_worker_file(root, bad, "evil");
            REQUIRE_FALSE(refused);
            CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
        }
        CHECK(ci::test::read_file(dir / "outside/target") == "untouched");
        CHECK(names_in(root).empty());
    }
}

TEST_CASE("write_worker_file gives the file and the directories it creates to the step user") {
    if (::geteuid() != 0) {
        MESSAGE("SKIP: only root can give files to another user (ci-worker --step-user needs "
                "root too)");
        return;
    }
    const ci::test::TempDir dir;
    const auto root = dir / "work";
    fs::create_directories(root / "existing");
    const ci::RunAs nobody{"nobody", 65534, 65534, {}, "/"};
    REQUIRE_OK(write_worker_file(root, "existing/new/token", "t", nobody));
    struct stat info {};
    REQUIRE(::stat((root / "existing/new/token").c_str(), &info) == 0);
    CHECK(info.st_uid == 65534U);
    CHECK(info.st_gid == 65534U);
    CHECK((info.st_mode & 07777U) == 0600U);
    REQUIRE(::stat((root / "existing/new").c_str(), &info) == 0);
    CHECK(info.st_uid == 65534U);
    REQUIRE(::stat((root / "existing").c_str(), &info) == 0);
    CHECK(info.st_uid == 0U); // an existing directory is left as it is
}
