#pragma once

/// \file
/// Merge-forward: every branch is built as a merge of its merge target into it, made so that
/// the same inputs always give the same merge commit id, the id
/// `git merge --no-ff --no-stat -m "Merge forward." TARGET` gives with the same identity and
/// dates:
/// 1. the branch tip is the first parent, the target tip the second;
/// 2. author and committer are a fixed identity (default `libci <ci@localhost>`);
/// 3. both dates are the branch tip's committer date, with its time zone;
/// 4. the message is "Merge forward.".
/// A conflict is an outcome (the conflicted paths), not an error.
///
/// Renames are detected as git does by default (50% similarity), and the conflicted paths are
/// the ones git leaves unmerged: a file renamed on one side and changed, deleted or added over on
/// the other conflicts under its new name only; renamed to two names, under both and the old
/// one. Not detected: directory renames (git's merge.directoryRenames): a file added on one side
/// into a directory the other side renamed stays where it was added, and merges cleanly, where
/// git reports a conflict at the renamed directory.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>

namespace ci::git {

/// Who merge commits are by.
struct Identity {
    std::string name = "libci";
    std::string email = "ci@localhost";
};

/// The message of every merge-forward commit (without its final newline).
inline constexpr std::string_view merge_message = "Merge forward.";

/// What to merge into `branch` under `rule` (a builder's merge_target), or nullopt when the
/// branch is built as pushed. The `auto` rules: master, release/*, tags and names that are
/// release tags (config::is_release_tag: 1.2.3, 1.2.3.dev1, 1.2.3rc1, ...) are not merged;
/// release-maintenance/X/... merges release/X; everything else merges `default_branch`.
[[nodiscard]] std::optional<std::string>
merge_target_for(std::string_view branch,
                 bool is_tag,
                 const config::MergeTarget& rule,
                 std::string_view default_branch = "master");

/// The result of merging a target into a branch tip.
struct MergeOutcome {
    std::string branch_tip;
    std::string target_tip;
    /// The merge commit; empty when the target was already part of the branch (nothing to
    /// merge, as git says "Already up to date") or on a conflict.
    std::string merge_commit;
    /// Conflicted paths, sorted, as `git diff --name-only --diff-filter=U` lists them after the
    /// same merge; empty on success.
    std::vector<std::string> conflicts;

    [[nodiscard]] bool conflicted() const noexcept { return !conflicts.empty(); }
    /// What to check out: the merge commit, or the branch tip when there was nothing to merge.
    [[nodiscard]] const std::string& result() const noexcept {
        return merge_commit.empty() ? branch_tip : merge_commit;
    }
};

/// Merges commit `target_tip` into commit `branch_tip` in the repository at `path` (bare or
/// not), writing the merge commit object (no ref or work tree changes). Fails with Git when the
/// repository or a commit cannot be read (native: libgit2 error class).
[[nodiscard]] Result<MergeOutcome> merge_forward(const std::filesystem::path& path,
                                                 std::string_view branch_tip,
                                                 std::string_view target_tip,
                                                 const Identity& identity = {});

} // namespace ci::git
