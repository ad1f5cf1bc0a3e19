#pragma once

/// \file
/// A latent (EC2) worker's secret kept on disk across restarts (`ci-worker start
/// --secret-state FILE`). Its first secret is a one-time token; each login replaces it by the
/// secret both sides derive (docs/api.md), and the master keeps only that secret's key. An
/// instance stopped when idle (`idle_action: stop`) and started again boots its worker afresh:
/// without the rotated secret on disk it could only present the spent token.
///
/// The file holds two lines, the worker's name and its secret; it is read only for the same
/// worker name (an AMI made from a worker's disk carries another worker's file), and written
/// atomically with mode 0600, never through a symbolic link.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::worker {

/// The secret last saved in `path` for worker `name`; nullopt when `path` does not exist or
/// names another worker. Fails with Io when it cannot be read, InvalidArgument when it is not
/// what save_secret_state writes (the message names the path, never its content).
[[nodiscard]] Result<std::optional<std::string>>
load_secret_state(const std::filesystem::path& path, std::string_view name);

/// Replaces `path` with `name` and `secret` (mode 0600: a temporary file in the same directory,
/// fsynced, renamed over it; missing parent directories are created with mode 0700). `path`
/// must be absolute. Fails with InvalidArgument (a relative path, a symbolic link in the way)
/// or Io, naming the path.
[[nodiscard]] Status save_secret_state(const std::filesystem::path& path,
                                       std::string_view name,
                                       std::string_view secret);

} // namespace ci::worker
