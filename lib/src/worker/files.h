#pragma once

// The worker's side of `worker_files` (ci/config/worker_files.h): writing a file the master
// sent after login, safely. Private to libci.

#include <filesystem>
#include <optional>
#include <string_view>

#include <ci/core/error.h>
#include <ci/core/process.h>

namespace ci::worker {

/// Writes `content` to `destination` (absolute, or relative to `work_root`, which is created
/// if missing) with mode 0600: a temporary 0600 file in the same directory, written, fsynced,
/// renamed over the destination, and the directory fsynced. Missing parent directories are
/// created with mode 0700; existing ones are left as they are. No symbolic link is followed
/// below `work_root` (relative destinations) or below "/" (absolute ones): each directory is
/// opened with O_NOFOLLOW relative to the one before it (openat), and a destination that is a
/// symbolic link or a directory is refused. Fails with InvalidArgument (a bad destination, a
/// symbolic link in the way) or Io, naming the destination (never the content); nothing is
/// left half-written. `owner`: the user that owns the file and the directories it creates
/// (`ci-worker start --step-user`: the steps run as that user and must read it); nullopt: the
/// worker's own.
[[nodiscard]] Status write_worker_file(const std::filesystem::path& work_root,
                                       std::string_view destination,
                                       std::string_view content,
                                       const std::optional<RunAs>& owner = std::nullopt);

} // namespace ci::worker
