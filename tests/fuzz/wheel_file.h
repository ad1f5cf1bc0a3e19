#pragma once

// For the wheel fuzz targets: a file of a wheel's name in a directory of this process's own, and
// the check both make of what an accepted wheel's index pages hold.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include <ci/wheelhouse/index.h>

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

/// Reads the wheel at `path`; when it is accepted, traps unless each JSON page of its index is
/// valid (UTF-8 included) JSON.
inline void read_and_check_pages(const std::filesystem::path& path) {
    auto wheel = wheelhouse::read_wheel(path);
    if (!wheel) {
        return;
    }
    for (const auto& page : wheelhouse::build_index(std::vector{wheel->entry})) {
        if (page.key.ends_with(".json")) {
            rapidjson::Document json;
            json.Parse<rapidjson::kParseValidateEncodingFlag>(page.body.c_str());
            if (json.HasParseError()) {
                __builtin_trap();
            }
        }
    }
}

} // namespace ci::fuzz
