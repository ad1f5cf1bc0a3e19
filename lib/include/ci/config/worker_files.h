#pragma once

/// \file
/// `slaves.<class>.worker_files`: files a worker needs for its builds (a GitHub token, an
/// acceptance-test config, an SSH key), read by the master from its own disk and sent to each
/// worker of the class over the worker connection right after its login, before any build
/// (docs/api.md, "Worker files"). They never go into EC2 user data, process arguments or logs.
///
/// DEST, the file on the worker: an absolute path, or a path relative to the worker's work
/// directory (`ci-worker start --work-dir`). It is written with mode 0600 (parent directories
/// it creates: 0700), atomically, never through a symbolic link.
/// SOURCE, the file on the master: absolute, or relative to the config file's directory.
/// EC2 and static classes may have worker_files; local classes may not (their workers run
/// inside the master, which can read the files itself).

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>

namespace ci::config {

/// The largest SOURCE file (1 MiB).
inline constexpr std::size_t max_worker_file_size = std::size_t{1} << 20U;
/// The most bytes of all of a class's worker files together (4 MiB).
inline constexpr std::size_t max_worker_files_size = std::size_t{4} << 20U;
/// The most files one class may send.
inline constexpr std::size_t max_worker_files = 64;
/// The longest DEST, in bytes.
inline constexpr std::size_t max_worker_file_path = 1024;

/// Checks a DEST: not empty, at most max_worker_file_path bytes, no NUL or other control
/// character, no empty, `.` or `..` segment (so no "//", no trailing '/', no escape from the
/// work directory), not "/" alone. Fails with InvalidArgument saying what is wrong. Pure.
[[nodiscard]] Status check_worker_file_destination(std::string_view destination);

/// The first DEST of `files` that is a directory of another one ("a" beside "a/b": one would
/// have to be a file and a directory), as an InvalidArgument naming both. Pure.
[[nodiscard]] Status
check_worker_file_destinations(const std::map<std::string, std::string>& files);

/// The worker_files of a class: empty for a local class.
[[nodiscard]] const std::map<std::string, std::string>&
worker_files_of(const WorkerClass& worker_class);

/// One file to send: where it goes and what it holds (a secret).
struct WorkerFileContent {
    std::string destination;
    std::string content;
    friend bool operator==(const WorkerFileContent&, const WorkerFileContent&) = default;
};

/// Reads the SOURCE of every file of `files` (DEST -> SOURCE). Fails with the read's error
/// (NotFound, PermissionDenied, Io) or InvalidArgument (over a size cap), its message starting
/// "slaves.CLASS.worker_files.DEST: " and naming the SOURCE, never its content.
[[nodiscard]] Result<std::vector<WorkerFileContent>>
read_worker_files(std::string_view worker_class, const std::map<std::string, std::string>& files);

/// What of a worker file's `content` to redact from logs: the whole content (without its
/// trailing newline), and each of its lines that holds no white space and is at least 16 bytes
/// long (a token, a line of a key's base64), so that a build printing part of an SSH key or a
/// token on a line of its own shows "[redacted]" instead. Lines with spaces (a config file's
/// prose) are left, so that ordinary output is not redacted; so are such lines after the
/// first 128 (each secret costs every log line a search). Pure.
[[nodiscard]] std::vector<std::string> worker_file_secrets(std::string_view content);

} // namespace ci::config
