#pragma once

#include <filesystem>
#include <string_view>

namespace ci::test {

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
public:
    explicit TempDir(std::string_view prefix = "libci-test");
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// path() / name
    [[nodiscard]] std::filesystem::path operator/(std::string_view name) const {
        return path_ / name;
    }

private:
    std::filesystem::path path_;
};

/// Writes `content` to `path` (creating parent directories) and returns the path.
std::filesystem::path write_file(const std::filesystem::path& path, std::string_view content);

/// Reads a whole file; an unreadable file fails the running test.
std::string read_file(const std::filesystem::path& path);

} // namespace ci::test
