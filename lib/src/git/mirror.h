#pragma once

// The mirror cache's repositories: created atomically (built in a temporary directory beside,
// then renamed into place), their remote repaired when opened, told apart when a fetch fails
// (damaged data, or only a remote that could not be reached), and replaced, when damaged, by a
// new clone swapped in with one rename, so that work directories borrowing their objects
// (git alternates) never see a mirror that is missing or half-made. Private to lib/src/git; the
// caller holds the mirror's lock.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <ci/core/error.h>

#include "git/transport.h"

namespace ci::git::detail {

/// Fetches the mirror's origin into the repository (the caller's credentials and progress).
using Fetch = std::function<Status(git_repository*)>;

/// The refspecs every mirror fetches with: every branch and every tag, forced.
inline constexpr std::string_view mirror_heads_refspec = "+refs/heads/*:refs/heads/*";
inline constexpr std::string_view mirror_tags_refspec = "+refs/tags/*:refs/tags/*";

/// Opens the mirror at `path`, with origin at `url` and both refspecs: what is missing (a
/// mirror left half-made by an older libci killed while creating it, a changed URL) is set.
/// Fails (Git) when `path` holds no repository that opens.
[[nodiscard]] Result<Repository> open_mirror(const std::filesystem::path& path,
                                             const std::string& url);

/// What is wrong with the mirror's own data, or nullopt when nothing was found: it does not
/// open, or a branch or tag names an object that is missing or does not read. `deep` also reads
/// every commit reachable from them and checks that its tree is there (for errors that name
/// a missing or unreadable object).
[[nodiscard]] std::optional<std::string> mirror_damage(const std::filesystem::path& path,
                                                       bool deep);

/// Whether a libgit2 error's class is one of reading or writing repository data (objects,
/// references, packs, configuration), as opposed to reaching the remote.
[[nodiscard]] bool is_data_error(const Error& error);

/// Makes the mirror at `path` anew: a repository created in a temporary directory beside it
/// (stale ones from a killed run removed first), fetched with `fetch`, given the objects of
/// the old mirror that still read and the new one lacks (merge commits libci wrote, which work
/// directories may be at), then swapped with the old one in one rename and the old deleted.
/// On failure `path` is left as it was and the temporary directory removed.
[[nodiscard]] Result<Repository>
replace_mirror(const std::filesystem::path& path, const std::string& url, const Fetch& fetch);

} // namespace ci::git::detail
