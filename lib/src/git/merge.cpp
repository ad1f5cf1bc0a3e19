#include "ci/git/merge.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <git2.h>
#include <git2/sys/index.h>

#include "git/library.h"

namespace ci::git {

namespace {

// RAII for libgit2 objects (libgit2's examples free every object on every path).
template <class T, void (*Free)(T*)> struct Deleter {
    void operator()(T* object) const noexcept { Free(object); }
};
using Repository = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using Commit = std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>>;
using Index = std::unique_ptr<git_index, Deleter<git_index, git_index_free>>;
using Tree = std::unique_ptr<git_tree, Deleter<git_tree, git_tree_free>>;
using Signature = std::unique_ptr<git_signature, Deleter<git_signature, git_signature_free>>;
using ConflictIterator =
    std::unique_ptr<git_index_conflict_iterator,
                    Deleter<git_index_conflict_iterator, git_index_conflict_iterator_free>>;

// The Error for the libgit2 call that just failed.
std::unexpected<Error> git_failure(std::string_view what, int code) {
    const git_error* error = git_error_last();
    return fail(ErrorCode::Git,
                fmt::format("{}: {}", what, error != nullptr ? error->message : "unknown error"),
                error != nullptr ? error->klass : code);
}

std::string oid_text(const git_oid* oid) {
    std::array<char, GIT_OID_HEXSZ + 1> text{};
    git_oid_tostr(text.data(), text.size(), oid);
    return text.data();
}

Result<Commit> lookup(git_repository* repository, std::string_view id, std::string_view role) {
    git_oid oid;
    const std::string text(id);
    if (int code = git_oid_fromstr(&oid, text.c_str()); code != 0) {
        return git_failure(fmt::format("{} \"{}\" is not a commit id", role, id), code);
    }
    git_commit* commit = nullptr;
    if (int code = git_commit_lookup(&commit, repository, &oid); code != 0) {
        return git_failure(fmt::format("read {} commit {}", role, id), code);
    }
    return Commit(commit);
}

// Three paths of one conflict, as libgit2 records them; empty where a side has no entry.
struct Triple {
    std::string ancestor;
    std::string ours;
    std::string theirs;
};

// The paths git leaves unmerged (`git diff --name-only --diff-filter=U`) for a merge that
// libgit2 recorded as `conflicts` (one per path, each side's entry at that path) and `renames`
// (its NAME entries: a file's path in the ancestor, ours and theirs). Sorted.
//
// libgit2 keeps each side's version of a renamed file at that side's path; git (merge-ort)
// moves the other side's version to the new name and conflicts there, so the old name is not
// listed. Only when both sides renamed a file to different names does git list the old name
// too (with the ancestor's version), beside the two new ones.
std::vector<std::string> git_conflict_paths(const std::vector<Triple>& conflicts,
                                            const std::vector<Triple>& renames) {
    // Where git puts what is left at an old name: the new name, and the side that renamed
    // (whose entry at the old name is then absent; one still present is another file).
    struct Carried {
        std::string to;
        bool ours;
        bool theirs;
    };
    std::map<std::string, Carried> carried;
    for (const auto& rename : renames) {
        const auto& [ancestor, ours, theirs] = rename;
        const bool ours_moved = !ours.empty() && ours != ancestor;
        const bool theirs_moved = !theirs.empty() && theirs != ancestor;
        if (ancestor.empty() || (!ours_moved && !theirs_moved) ||
            (ours_moved && theirs_moved && ours != theirs)) {
            continue; // not a rename, or renamed to two names: the old name stays listed
        }
        carried[ancestor] = {ours_moved ? ours : theirs, ours_moved, theirs_moved};
    }
    std::set<std::string> paths;
    for (const auto& [ancestor, ours, theirs] : conflicts) {
        const std::string& path = !ancestor.empty() ? ancestor : (!ours.empty() ? ours : theirs);
        const auto found = carried.find(path);
        const bool moved = found != carried.end() && (!found->second.ours || ours.empty()) &&
                           (!found->second.theirs || theirs.empty());
        paths.insert(moved ? found->second.to : path);
    }
    return {paths.begin(), paths.end()};
}

// The conflicted paths of a merged index, as git lists them.
Result<std::vector<std::string>> conflicted_paths(git_index* index) {
    git_index_conflict_iterator* iterator_raw = nullptr;
    if (const int code = git_index_conflict_iterator_new(&iterator_raw, index); code != 0) {
        return git_failure("list conflicts", code);
    }
    const ConflictIterator iterator(iterator_raw);
    std::vector<Triple> conflicts;
    const git_index_entry* ancestor = nullptr;
    const git_index_entry* ours = nullptr;
    const git_index_entry* theirs = nullptr;
    const auto path = [](const git_index_entry* entry) {
        return std::string(entry != nullptr ? entry->path : "");
    };
    int code = 0;
    while ((code = git_index_conflict_next(&ancestor, &ours, &theirs, iterator.get())) == 0) {
        conflicts.push_back({path(ancestor), path(ours), path(theirs)});
    }
    if (code != GIT_ITEROVER) {
        return git_failure("list conflicts", code);
    }
    std::vector<Triple> renames;
    for (std::size_t i = 0; i < git_index_name_entrycount(index); ++i) {
        const git_index_name_entry* entry = git_index_name_get_byindex(index, i);
        const auto name = [](const char* text) { return std::string(text != nullptr ? text : ""); };
        renames.push_back({name(entry->ancestor), name(entry->ours), name(entry->theirs)});
    }
    return git_conflict_paths(conflicts, renames);
}

} // namespace

std::optional<std::string> merge_target_for(std::string_view branch,
                                            bool is_tag,
                                            const config::MergeTarget& rule,
                                            std::string_view default_branch) {
    switch (rule.mode) {
    case config::MergeTarget::Mode::None:
        return std::nullopt;
    case config::MergeTarget::Mode::Branch:
        return rule.branch == branch ? std::nullopt : std::optional<std::string>(rule.branch);
    case config::MergeTarget::Mode::Auto:
        break;
    }
    if (is_tag || branch == default_branch || branch.starts_with("release/") ||
        config::is_release_tag(branch)) {
        return std::nullopt;
    }
    constexpr std::string_view maintenance = "release-maintenance/";
    if (branch.starts_with(maintenance)) {
        const auto rest = branch.substr(maintenance.size());
        const auto slash = rest.find('/');
        if (slash != std::string_view::npos && slash > 0) {
            return fmt::format("release/{}", rest.substr(0, slash));
        }
    }
    return std::string(default_branch);
}

Result<MergeOutcome> merge_forward(const std::filesystem::path& path,
                                   std::string_view branch_tip,
                                   std::string_view target_tip,
                                   const Identity& identity) {
    if (auto started = detail::ensure_initialized(); !started) {
        return fail(started.error());
    }
    git_repository* raw = nullptr;
    if (int code = git_repository_open(&raw, path.c_str()); code != 0) {
        return git_failure(fmt::format("open repository {}", path.string()), code);
    }
    const Repository repository(raw);
    auto ours = lookup(raw, branch_tip, "branch tip");
    if (!ours) {
        return fail(ours.error());
    }
    auto theirs = lookup(raw, target_tip, "target tip");
    if (!theirs) {
        return fail(theirs.error());
    }
    MergeOutcome outcome;
    outcome.branch_tip = oid_text(git_commit_id(ours->get()));
    outcome.target_tip = oid_text(git_commit_id(theirs->get()));

    // Already up to date: the target is the branch tip or one of its ancestors (git makes no
    // commit then, --no-ff or not).
    git_oid base;
    const int base_code =
        git_merge_base(&base, raw, git_commit_id(ours->get()), git_commit_id(theirs->get()));
    if (base_code == 0 && git_oid_equal(&base, git_commit_id(theirs->get())) != 0) {
        return outcome;
    }
    if (base_code != 0 && base_code != GIT_ENOTFOUND) {
        return git_failure("find the merge base", base_code);
    }

    // The *_INIT macros' partial brace lists are missing-field-initializers to clang; the init
    // functions set the same defaults, and fail only for a version other than the headers'.
    git_merge_options options{};
    (void)git_merge_options_init(&options, GIT_MERGE_OPTIONS_VERSION);
    // git's defaults: rename detection at 50% similarity.
    options.flags = GIT_MERGE_FIND_RENAMES;
    git_index* merged_raw = nullptr;
    if (int code = git_merge_commits(&merged_raw, raw, ours->get(), theirs->get(), &options);
        code != 0) {
        return git_failure(fmt::format("merge {} into {}", outcome.target_tip, outcome.branch_tip),
                           code);
    }
    const Index merged(merged_raw);
    if (git_index_has_conflicts(merged.get()) != 0) {
        auto paths = conflicted_paths(merged.get());
        if (!paths) {
            return fail(paths.error());
        }
        outcome.conflicts = std::move(*paths);
        return outcome;
    }
    git_oid tree_id;
    if (int code = git_index_write_tree_to(&tree_id, merged.get(), raw); code != 0) {
        return git_failure("write the merged tree", code);
    }
    git_tree* tree_raw = nullptr;
    if (int code = git_tree_lookup(&tree_raw, raw, &tree_id); code != 0) {
        return git_failure("read the merged tree", code);
    }
    const Tree tree(tree_raw);
    // Rule 3: the branch tip's committer date, with its time zone, for both dates.
    const git_signature* tip_committer = git_commit_committer(ours->get());
    git_signature* signature_raw = nullptr;
    if (int code = git_signature_new(&signature_raw,
                                     identity.name.c_str(),
                                     identity.email.c_str(),
                                     tip_committer->when.time,
                                     tip_committer->when.offset);
        code != 0) {
        return git_failure("make the merge signature", code);
    }
    const Signature signature(signature_raw);
    const std::string message = std::string(merge_message) + "\n";
    std::array<const git_commit*, 2> parents = {ours->get(), theirs->get()};
    git_oid merge_id;
    if (int code = git_commit_create(&merge_id,
                                     raw,
                                     nullptr,
                                     signature.get(),
                                     signature.get(),
                                     nullptr,
                                     message.c_str(),
                                     tree.get(),
                                     parents.size(),
                                     parents.data());
        code != 0) {
        return git_failure("write the merge commit", code);
    }
    outcome.merge_commit = oid_text(&merge_id);
    return outcome;
}

} // namespace ci::git
