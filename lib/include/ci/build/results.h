#pragma once

/// \file
/// Where uploaded build results live, on the master's disk and at its web address. Pure.
///
/// A build's results are DATA_DIR/results/BUILDER/BRANCH/BUILD/NAME, where BUILDER and BRANCH
/// are single path segments: path_segment() percent-encodes every byte outside [A-Za-z0-9_.-]
/// (so "release/1.2" is "release%2F1.2" and "flocker/docs" is "flocker%2Fdocs"), and a leading
/// '.' too (no "." or ".." or hidden segment). The encoding is one-to-one: two different branch
/// names never share a directory, and a '/' in a name never nests one. A builder without a
/// repository has no branch: its BRANCH is "-" (a git branch name cannot be "-").
/// The web address of that directory, results_url(), percent-encodes each segment once more
/// (the '%' of "%2F" is "%25"), as a URL path must for a segment with '%' in it.

#include <cstdint>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::build {

/// `name` as one path segment (see the file comment). Never empty.
[[nodiscard]] std::string path_segment(std::string_view name);

/// BUILDER/BRANCH/BUILD, relative to DATA_DIR/results.
[[nodiscard]] std::string
results_path(std::string_view builder, std::string_view branch, std::int64_t build);

/// `base` (the master's web address, with or without a trailing '/') + "/results/" +
/// BUILDER/BRANCH/BUILD, each segment percent-encoded for a URL (see the file comment).
[[nodiscard]] std::string results_url(std::string_view base,
                                      std::string_view builder,
                                      std::string_view branch,
                                      std::int64_t build);

/// Checks an upload's `to` (its NAME under the build's results directory), or a path inside
/// an upload: one or more '/'-separated segments, none empty, "." or "..", not absolute, no
/// control character or backslash, at most 1,024 bytes and valid UTF-8. Fails with
/// InvalidArgument saying which rule `path` breaks.
[[nodiscard]] Status check_relative_path(std::string_view path);

} // namespace ci::build
