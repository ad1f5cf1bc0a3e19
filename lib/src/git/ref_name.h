#pragma once

// Ref names as git accepts them (`git check-ref-format`), for refs that arrive from outside: a
// webhook's "ref", a forced branch, a remote's listing. Pure; no libgit2.

#include <cstddef>
#include <string_view>

#include <ci/core/error.h>

namespace ci::git {

/// The longest ref name accepted, in bytes. git has no limit of its own, but a loose ref is a
/// file whose path is the name, and a build's spec carries it to a worker.
inline constexpr std::size_t max_ref_length = 1024;
/// The longest component (between slashes) accepted: a file name's limit (NAME_MAX) on Linux.
inline constexpr std::size_t max_ref_component_length = 255;

/// Checks a full ref name ("refs/heads/feature/x") by the rules of `git check-ref-format` (no
/// --allow-onelevel, --refspec-pattern or --normalize), the length limits above, and UTF-8
/// (which git does not ask for: a branch's name goes out as JSON). Fails with
/// InvalidArgument saying which rule the name breaks (quoting at most its first 64 bytes, since
/// the name may be megabytes long).
[[nodiscard]] Status check_ref_format(std::string_view ref);

/// Whether `id` can name a commit: 1 to 64 hexadecimal digits (a SHA-1 or SHA-256 object id,
/// possibly abbreviated). Anything else (a rev expression, megabytes of text) is not taken from
/// outside.
[[nodiscard]] bool is_commit_id(std::string_view id);

} // namespace ci::git
