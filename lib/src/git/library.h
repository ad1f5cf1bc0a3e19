#pragma once

#include <string>

#include <ci/core/error.h>

namespace ci::git::detail {

/// The loaded libgit2's version, e.g. "1.5.1".
[[nodiscard]] std::string libgit2_version();

/// git_libgit2_init(); the matching shutdown runs at exit.
[[nodiscard]] Status global_init();

} // namespace ci::git::detail
