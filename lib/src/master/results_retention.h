#pragma once

// Retention of the results tree (DATA_DIR/results/BUILDER/BRANCH/BUILD/...): the master deletes
// BUILD directories older than `buildmaster.results_retention`. A BUILD directory's age is its
// modification time (set when an entry is added directly in it: when the build's upload
// stored its files), not the store's finish time: results put there by hand age the same way.
// Nothing is followed through a symbolic link: the tree is walked with openat(O_NOFOLLOW) and
// deleted with unlinkat, so a link is removed as a link, never what it points to.
//
// Partial files of uploads (DATA_DIR/results/.partial, see uploads.h) that no running upload
// uses are deleted once they were not written to for partial_max_age: their uploads were never
// resumed.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include <ci/core/clock.h>

namespace ci::master {

/// What one sweep did.
struct SweepReport {
    std::size_t deleted = 0; ///< BUILD directories (partial files) deleted
    std::size_t failed = 0;  ///< BUILD directories (partial files) that could not be deleted
    /// sweep_results: the bytes of the regular files left anywhere below the root (.partial
    /// included), for the ci_results_bytes gauge.
    std::uint64_t kept_bytes = 0;
};

/// Deletes every BUILD directory (the third level below `root`) whose modification time is
/// older than `now - retention`, then the BRANCH and BUILDER directories left empty. Logs each
/// deletion and a summary with the count. A missing `root` is an empty tree. Entries at the
/// first three levels that are not directories (files, symbolic links) are left alone. A
/// retention of 0 (`results_retention: never`) deletes nothing. Then measures what is left.
SweepReport
sweep_results(const std::filesystem::path& root, WallTime now, std::chrono::seconds retention);

/// How long a partial file of an upload (DATA_DIR/results/.partial) is kept after its last
/// write when no running upload uses it: its upload was never resumed (or
/// `buildmaster.results_retention`, when shorter).
inline constexpr std::chrono::seconds partial_max_age = std::chrono::hours(24);

/// Deletes the entries of `partials` (DATA_DIR/results/.partial) whose modification time is
/// older than `now - max_age`, but those named in `in_use` (the partial files of open uploads,
/// by file name). Files and symbolic links are removed (a link as a link); directories there
/// are left alone. Logs each deletion. A missing directory is an empty one.
SweepReport sweep_partials(const std::filesystem::path& partials,
                           WallTime now,
                           std::chrono::seconds max_age,
                           const std::set<std::string>& in_use);

} // namespace ci::master
