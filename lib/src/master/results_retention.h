#pragma once

// Retention of the results tree (DATA_DIR/results/BUILDER/BRANCH/BUILD/...): the master deletes
// BUILD directories older than `buildmaster.results_retention`. A BUILD directory's age is its
// modification time (set when an entry is added directly in it: when the build's upload
// stored its files), not the store's finish time: results put there by hand age the same way.
// Nothing is followed through a symbolic link: the tree is walked with openat(O_NOFOLLOW) and
// deleted with unlinkat, so a link is removed as a link, never what it points to.

#include <chrono>
#include <cstddef>
#include <filesystem>

#include <ci/core/clock.h>

namespace ci::master {

/// What one sweep did.
struct SweepReport {
    std::size_t deleted = 0; ///< BUILD directories deleted
    std::size_t failed = 0;  ///< BUILD directories that could not be (wholly) deleted
};

/// Deletes every BUILD directory (the third level below `root`) whose modification time is
/// older than `now - retention`, then the BRANCH and BUILDER directories left empty. Logs each
/// deletion and a summary with the count. A missing `root` is an empty tree. Entries at the
/// first three levels that are not directories (files, symbolic links) are left alone.
SweepReport
sweep_results(const std::filesystem::path& root, WallTime now, std::chrono::seconds retention);

} // namespace ci::master
