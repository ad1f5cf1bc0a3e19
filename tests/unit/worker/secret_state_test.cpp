// A latent worker's secret kept on disk (ci-worker start --secret-state): written 0600 for one
// worker name, read back only for that name, malformed files and symbolic links refused.

#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <ci/worker/secret_state.h>

#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace fs = std::filesystem;
using ci::worker::load_secret_state;
using ci::worker::save_secret_state;

TEST_CASE("secret state: saved 0600, read back for its worker only") {
    const ci::test::TempDir dir;
    const auto path = dir / "state" / "worker-secret";
    // Nothing saved yet: the one-time token is used.
    auto missing = load_secret_state(path, "aws/a1");
    REQUIRE_OK(missing);
    CHECK_FALSE(missing->has_value());
    REQUIRE_OK(save_secret_state(path, "aws/a1", "s1"));
    struct stat info {};
    REQUIRE(::lstat(path.c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0600);
    REQUIRE(::lstat(path.parent_path().c_str(), &info) == 0);
    CHECK((info.st_mode & 07777) == 0700);
    auto loaded = load_secret_state(path, "aws/a1");
    REQUIRE_OK(loaded);
    CHECK(*loaded == std::optional<std::string>("s1"));
    // Each rotation replaces it.
    REQUIRE_OK(save_secret_state(path, "aws/a1", "s2"));
    CHECK(*load_secret_state(path, "aws/a1") == std::optional<std::string>("s2"));
    CHECK(ci::test::read_file(path) == "aws/a1\ns2\n");
    // Another worker's file (an image made from a worker's disk) is not used.
    auto other = load_secret_state(path, "aws/b2");
    REQUIRE_OK(other);
    CHECK_FALSE(other->has_value());
    // No temporary file is left beside it.
    CHECK(std::distance(fs::directory_iterator(path.parent_path()), fs::directory_iterator()) == 1);
}

TEST_CASE("secret state: malformed files, relative paths and links are refused") {
    const ci::test::TempDir dir;
    for (const char* text : {"", "aws/a1", "aws/a1\n", "aws/a1\n\n", "aws/a1\ns\nmore\n"}) {
        CAPTURE(text);
        const auto path = ci::test::write_file(dir / "bad", text);
        const auto loaded = load_secret_state(path, "aws/a1");
        REQUIRE_FALSE(loaded);
        CHECK(loaded.error().code == ci::ErrorCode::InvalidArgument);
        CHECK(loaded.error().message.find(path.string()) != std::string::npos);
    }
    const auto huge =
        ci::test::write_file(dir / "huge", "aws/a1\n" + std::string(5000, 'x') + "\n");
    CHECK_FALSE(load_secret_state(huge, "aws/a1"));
    const auto relative = save_secret_state("state/secret", "aws/a1", "s");
    REQUIRE_FALSE(relative);
    CHECK(relative.error().code == ci::ErrorCode::InvalidArgument);
    CHECK_FALSE(save_secret_state(dir / "x", "aws/a1", "s\nt"));
    // A symbolic link where the file goes is not followed: the target stays as it was.
    const auto target = ci::test::write_file(dir / "target", "untouched");
    fs::create_symlink(target, dir / "link");
    CHECK_FALSE(save_secret_state(dir / "link", "aws/a1", "s"));
    CHECK(ci::test::read_file(target) == "untouched");
}
