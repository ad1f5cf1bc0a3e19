#pragma once

// File reading and writing for configuration files, with errors that name the file and the
// operation, and the checks every config text passes before a parser sees it.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <ci/config/load.h>
#include <ci/core/error.h>

namespace ci::config::detail {

/// The content of `path`, at most `limit` bytes of it: a longer file (or /dev/zero, a FIFO that
/// never ends) gives its first `limit` bytes, for the caller to refuse by their number. Fails with
/// NotFound, PermissionDenied or Io (native: errno); the message is "<what> <path>: <strerror>".
[[nodiscard]] Result<std::string>
read_text_file(const std::filesystem::path& path, std::string_view what, std::size_t limit);

/// The 1-based line and column of byte `offset` of `text` (columns count bytes).
[[nodiscard]] std::pair<int, int> line_and_column(std::string_view text, std::size_t offset);

/// The first reason to refuse a config text before parsing it, as an error at its place: longer
/// than max_config_size, a NUL byte, invalid UTF-8. nullopt when there is none.
[[nodiscard]] std::optional<Diagnostic> refuse_text(std::string_view text, std::string_view origin);

/// Replaces `path` with `content` atomically: a 0600 temporary file in the same directory,
/// fsync, rename. Fails with Io (native: errno); no partial file is left behind.
[[nodiscard]] Status write_private_file(const std::filesystem::path& path,
                                        std::string_view content);

} // namespace ci::config::detail
