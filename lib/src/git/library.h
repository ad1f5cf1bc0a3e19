#pragma once

#include <string>

#include <ci/core/error.h>

namespace ci::git::detail {

/// The loaded libgit2's version, e.g. "1.5.1".
[[nodiscard]] std::string libgit2_version();

/// git_libgit2_init() and libci's libgit2 settings, once per process, on the git module's first
/// use (thread-safe): libgit2 loads the system's CA certificates when it starts (8 ms here), which
/// programs that never touch git should not pay. The matching shutdown runs at exit.
[[nodiscard]] Status ensure_initialized();

} // namespace ci::git::detail
