#pragma once

// For the wheel fuzz targets: a file of a wheel's name in a directory of this process's own.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace ci::fuzz {

/// Writes `bytes` as DIR/pkg-1.0-py3-none-any.whl (DIR made once per process) and returns its
/// path.
inline std::filesystem::path write_wheel(std::string_view bytes) {
    static const std::filesystem::path dir = [] {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "libci-fuzz-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            std::abort();
        }
        return std::filesystem::path(pattern);
    }();
    const auto path = dir / "pkg-1.0-py3-none-any.whl";
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

} // namespace ci::fuzz
