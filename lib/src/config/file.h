#pragma once

// File reading and writing for configuration files, with errors that name the file and the
// operation.

#include <filesystem>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::config::detail {

/// The whole content of `path`. Fails with NotFound, PermissionDenied or Io (native: errno); the
/// message is "<what> <path>: <strerror>".
[[nodiscard]] Result<std::string> read_text_file(const std::filesystem::path& path,
                                                 std::string_view what);

/// Replaces `path` with `content` atomically: a 0600 temporary file in the same directory,
/// fsync, rename. Fails with Io (native: errno); no partial file is left behind.
[[nodiscard]] Status write_private_file(const std::filesystem::path& path,
                                        std::string_view content);

} // namespace ci::config::detail
