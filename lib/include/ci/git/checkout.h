#pragma once

/// \file
/// A build's checkout: a mirror of the repository in the worker's cache, fetched
/// incrementally, and a work directory holding the branch tip merged forward onto its target.
///
/// The mirror is bare, one per URL, shared by every build on the worker: a file lock serializes
/// fetches. Work directories borrow the mirror's objects (git alternates) instead of copying
/// them, and are reused: each checkout forces the tree and removes untracked and ignored files.
///
/// A mirror is created in a temporary directory beside its place and renamed into it once
/// fetched, so a run killed meanwhile leaves nothing half-made where the next one looks (and a
/// mirror found without its remote or refspecs is repaired). A fetch that fails while the
/// mirror's own data is sound (the server refused or dropped the connection, the credentials
/// were refused) is an error naming the URL and leaves the mirror untouched. Only a mirror
/// that does not open, or whose branches and tags name objects that are missing or do not read,
/// is cloned again: beside it, with the objects of the old one that still read and the new one
/// lacks (libci's merge commits), then swapped in with one rename, so that work directories
/// borrowing its objects keep reading their history.
///
/// Credentials never reach a file or a log: an HTTPS token is given to libgit2 through its
/// credentials callback, never written into a URL or `.git/config`.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/error.h>
#include <ci/git/merge.h>

namespace ci::git {

/// Where a checkout is.
struct Progress {
    enum class Stage { Receiving, Indexing, CheckingOut };
    Stage stage = Stage::Receiving;
    std::uint64_t current = 0;
    std::uint64_t total = 0;
};

struct CheckoutOptions {
    std::string url;                 ///< what `git clone` accepts
    std::filesystem::path cache_dir; ///< where mirrors live
    std::string branch;              ///< the branch (or tag) to build
    bool is_tag = false;
    std::optional<std::string> revision; ///< an exact commit instead of the tip
    std::optional<std::string> target;   ///< the branch to merge in; nullopt: none
    /// The commit of `target` to merge instead of its tip (a triggered build, pinned to the
    /// merge its triggering build tested); nullopt: the tip.
    std::optional<std::string> target_revision;
    Identity identity;
    std::string token;   ///< HTTPS token (a secret); empty: none
    std::string ssh_key; ///< private key file for SSH; empty: the agent
    /// Also initialize and check out submodules, recursively, at the commits the checked-out
    /// tree records (fetched with the same credentials; cloned under the work directory's
    /// .git/modules, not mirrored).
    bool submodules = false;
    /// Also submodules whose URL (resolved against the repository's) is a local path or
    /// file://. Refused by default, as git refuses them since 2.38.1 (protocol.file.allow=user,
    /// CVE-2022-39253): a pushed branch could otherwise read any repository on the worker, other
    /// projects' mirrors included.
    bool allow_local_submodules = false;
    /// The work directory is the caller's own (a worker's slot, WORK_DIR/BUILDER/SLOT): when it
    /// is not empty and not a libci checkout (a step deleted its .git), it is emptied (links
    /// removed, not followed) instead of refused. Never for a directory a user named.
    bool owned_work_dir = false;
    std::function<void(const Progress&)> on_progress;
};

/// What a checkout did.
struct CheckoutResult {
    MergeOutcome merge;                ///< branch tip, target tip, merge commit, conflicts
    std::optional<std::string> target; ///< the target merged, when one was
    std::string checked_out;           ///< the commit now in the work directory
};

/// Fetches, merges forward and checks out into `work_dir`, which must be absent (it is
/// created), empty, or a checkout made by libci (a repository there whose .git holds the file
/// `libci-checkout`, or, made before that file, borrows its objects from a mirror under
/// `cache_dir`): anything else fails with InvalidArgument naming it, before anything changes,
/// unless `owned_work_dir` (then it is emptied first).
/// Symbolic links under it that its index does not hold (a build's) are removed first, so that
/// the checkout writes and deletes nothing through them outside the directory. A conflict is
/// an outcome: `merge.conflicts` lists the paths and the work directory holds the branch tip,
/// clean. Fails with Git (fetch, missing branch or commit, corrupt data that a fresh clone did
/// not cure) or Io, naming the URL (without credentials) and what failed. libgit2 1.5 has no
/// network timeouts: a server that accepts the connection and never answers holds the fetch
/// (and the mirror's lock) until the connection ends.
[[nodiscard]] Result<CheckoutResult> checkout(const std::filesystem::path& work_dir,
                                              const CheckoutOptions& options);

/// The commit HEAD names in the repository whose work directory is `work_dir` itself (not one
/// found above it): what a build checked out, unless something moved it since. Fails with Git
/// when there is no such repository or HEAD names no commit.
[[nodiscard]] Result<std::string> head_commit(const std::filesystem::path& work_dir);

/// A submodule's URL as git resolves it: one that starts with "./" or "../" is relative to the
/// superproject's URL (each "../" removes one path component, or the path of a scp-like
/// "host:path" URL); any other is returned as it is.
[[nodiscard]] std::string submodule_url(std::string_view superproject, std::string_view url);

/// The mirror directory `checkout` uses for `url` under `cache_dir`.
[[nodiscard]] std::filesystem::path mirror_path(const std::filesystem::path& cache_dir,
                                                const std::string& url);

} // namespace ci::git
