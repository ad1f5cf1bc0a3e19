#include "git/mirror.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <span>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <git2.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

namespace ci::git::detail {

namespace {

using Odb = std::unique_ptr<git_odb, Deleter<git_odb, git_odb_free>>;
using Walk = std::unique_ptr<git_revwalk, Deleter<git_revwalk, git_revwalk_free>>;
using ReferenceIterator =
    std::unique_ptr<git_reference_iterator,
                    Deleter<git_reference_iterator, git_reference_iterator_free>>;
using Reference = std::unique_ptr<git_reference, Deleter<git_reference, git_reference_free>>;
using Commit = std::unique_ptr<git_commit, Deleter<git_commit, git_commit_free>>;

std::string oid_text(const git_oid* oid) {
    std::array<char, GIT_OID_HEXSZ + 1> text{};
    git_oid_tostr(text.data(), text.size(), oid);
    return text.data();
}

std::string last_error() {
    const git_error* error = git_error_last();
    std::string message = error != nullptr ? error->message : "unknown error";
    git_error_clear();
    return message;
}

// Sets origin's URL and refspecs on a mirror (new, or found without them).
Status configure_remote(git_repository* repository,
                        const std::filesystem::path& path,
                        const std::string& url) {
    const auto what = fmt::format("set up mirror {}", path.string());
    git_remote* raw = nullptr;
    if (git_remote_lookup(&raw, repository, "origin") != 0) {
        git_error_clear();
        if (int code = git_remote_create_with_fetchspec(
                &raw, repository, "origin", url.c_str(), mirror_heads_refspec.data());
            code != 0) {
            return git_failure(what, code);
        }
    }
    const Remote remote(raw);
    if (const char* current = git_remote_url(remote.get()); current == nullptr || url != current) {
        // The URL changed (a new host): keep the objects, follow the new URL.
        if (int code = git_remote_set_url(repository, "origin", url.c_str()); code != 0) {
            return git_failure(what, code);
        }
    }
    git_strarray specs{};
    if (int code = git_remote_get_fetch_refspecs(&specs, remote.get()); code != 0) {
        return git_failure(what, code);
    }
    std::set<std::string> present;
    for (const char* spec : std::span(specs.strings, specs.count)) {
        present.emplace(spec);
    }
    git_strarray_dispose(&specs);
    for (const std::string_view spec : {mirror_heads_refspec, mirror_tags_refspec}) {
        if (!present.contains(std::string(spec))) {
            if (int code = git_remote_add_fetch(repository, "origin", spec.data()); code != 0) {
                return git_failure(what, code);
            }
        }
    }
    return {};
}

// Copies into `to` every loose object of the repository at `from` that reads and `to` lacks.
// Objects libci wrote (merge commits and their trees) are loose; fetched ones are in packs and
// come again with the new clone.
void salvage_loose_objects(const std::filesystem::path& from, git_repository* to) {
    git_odb* raw = nullptr;
    if (git_odb_open(&raw, (from / "objects").c_str()) != 0) {
        git_error_clear();
        return;
    }
    const Odb old(raw);
    git_odb* target_raw = nullptr;
    if (git_repository_odb(&target_raw, to) != 0) {
        git_error_clear();
        return;
    }
    const Odb target(target_raw);
    std::error_code error;
    int kept = 0;
    for (const auto& fan : std::filesystem::directory_iterator(from / "objects", error)) {
        const std::string prefix = fan.path().filename().string();
        if (prefix.size() != 2 || !fan.is_directory(error)) {
            continue;
        }
        for (const auto& file : std::filesystem::directory_iterator(fan.path(), error)) {
            const std::string hex = prefix + file.path().filename().string();
            git_oid oid;
            if (hex.size() != GIT_OID_HEXSZ || git_oid_fromstr(&oid, hex.c_str()) != 0 ||
                git_odb_exists(target.get(), &oid) != 0) {
                git_error_clear();
                continue;
            }
            git_odb_object* object = nullptr;
            if (git_odb_read(&object, old.get(), &oid) != 0) {
                git_error_clear();
                continue; // damaged: the new mirror does without it
            }
            git_oid written;
            if (git_odb_write(&written,
                              target.get(),
                              git_odb_object_data(object),
                              git_odb_object_size(object),
                              git_odb_object_type(object)) == 0) {
                ++kept;
            } else {
                git_error_clear();
            }
            git_odb_object_free(object);
        }
    }
    if (kept > 0) {
        log::info("mirror {}: kept {} object{} libci wrote in the old one",
                  from.string(),
                  kept,
                  kept == 1 ? "" : "s");
    }
}

// Removes what a run killed while replacing the mirror at `path` left beside it.
void remove_stale_siblings(const std::filesystem::path& path) {
    const std::string prefix = path.filename().string() + ".new-";
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(path.parent_path(), error)) {
        if (entry.path().filename().string().starts_with(prefix)) {
            std::filesystem::remove_all(entry.path(), error);
        }
    }
}

} // namespace

Result<Repository> open_mirror(const std::filesystem::path& path, const std::string& url) {
    git_repository* raw = nullptr;
    if (int code = git_repository_open_ext(
            &raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, nullptr);
        code != 0) {
        return git_failure(fmt::format("open mirror {}", path.string()), code);
    }
    Repository repository(raw);
    if (auto status = configure_remote(repository.get(), path, url); !status) {
        return fail(status.error());
    }
    return repository;
}

std::optional<std::string> mirror_damage(const std::filesystem::path& path, bool deep) {
    git_repository* raw = nullptr;
    if (git_repository_open_ext(&raw,
                                path.c_str(),
                                GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE,
                                nullptr) != 0) {
        return "it does not open: " + last_error();
    }
    const Repository repository(raw);
    git_reference_iterator* iterator_raw = nullptr;
    if (git_reference_iterator_new(&iterator_raw, raw) != 0) {
        return "its references do not read: " + last_error();
    }
    const ReferenceIterator iterator(iterator_raw);
    git_revwalk* walk_raw = nullptr;
    if (git_revwalk_new(&walk_raw, raw) != 0) {
        return "its history does not read: " + last_error();
    }
    const Walk walk(walk_raw);
    git_reference* ref_raw = nullptr;
    int code = 0;
    while ((code = git_reference_next(&ref_raw, iterator.get())) == 0) {
        const Reference ref(ref_raw);
        const std::string name = git_reference_name(ref.get());
        git_object* object = nullptr;
        if (git_reference_peel(&object, ref.get(), GIT_OBJECT_ANY) != 0) {
            return fmt::format("{} names an object that does not read: {}", name, last_error());
        }
        const Object peeled(object);
        if (git_object_type(peeled.get()) != GIT_OBJECT_COMMIT) {
            continue;
        }
        git_commit* commit_raw = nullptr;
        if (git_commit_lookup(&commit_raw, raw, git_object_id(peeled.get())) != 0) {
            return fmt::format("{} names a commit that does not read: {}", name, last_error());
        }
        const Commit commit(commit_raw);
        git_tree* tree = nullptr;
        if (git_commit_tree(&tree, commit.get()) != 0) {
            return fmt::format("the tree of {} does not read: {}", name, last_error());
        }
        git_tree_free(tree);
        if (deep && git_revwalk_push(walk.get(), git_object_id(peeled.get())) != 0) {
            return fmt::format("the history of {} does not read: {}", name, last_error());
        }
    }
    if (code != GIT_ITEROVER) {
        return "its references do not read: " + last_error();
    }
    if (!deep) {
        return std::nullopt;
    }
    git_odb* odb_raw = nullptr;
    if (git_repository_odb(&odb_raw, raw) != 0) {
        return "its objects do not read: " + last_error();
    }
    const Odb odb(odb_raw);
    git_oid oid;
    while ((code = git_revwalk_next(&oid, walk.get())) == 0) {
        git_commit* commit_raw = nullptr;
        if (git_commit_lookup(&commit_raw, raw, &oid) != 0) {
            return fmt::format("commit {} does not read: {}", oid_text(&oid), last_error());
        }
        const Commit commit(commit_raw);
        if (git_odb_exists(odb.get(), git_commit_tree_id(commit.get())) == 0) {
            return fmt::format("the tree of commit {} is missing", oid_text(&oid));
        }
    }
    if (code != GIT_ITEROVER) {
        return "its history does not read: " + last_error();
    }
    return std::nullopt;
}

bool is_data_error(const Error& error) {
    if (!error.native) {
        return false;
    }
    const int klass = *error.native;
    return klass == GIT_ERROR_ODB || klass == GIT_ERROR_OBJECT || klass == GIT_ERROR_REPOSITORY ||
           klass == GIT_ERROR_INDEXER || klass == GIT_ERROR_REFERENCE || klass == GIT_ERROR_ZLIB ||
           klass == GIT_ERROR_CONFIG;
}

Result<Repository>
replace_mirror(const std::filesystem::path& path, const std::string& url, const Fetch& fetch) {
    remove_stale_siblings(path);
    auto token = crypto::random_token(8);
    if (!token) {
        return fail(token.error());
    }
    const std::filesystem::path fresh = path.string() + ".new-" + *token;
    const auto discard = [&fresh] {
        std::error_code ignored;
        std::filesystem::remove_all(fresh, ignored);
    };
    {
        git_repository* raw = nullptr;
        if (int code = git_repository_init(&raw, fresh.c_str(), 1); code != 0) {
            auto failure = git_failure(fmt::format("create mirror {}", path.string()), code);
            discard();
            return failure;
        }
        const Repository repository(raw);
        Status made = configure_remote(raw, path, url);
        if (made) {
            made = fetch(raw);
        }
        if (!made) {
            discard();
            return fail(made.error());
        }
        std::error_code error;
        if (std::filesystem::exists(path / "objects", error)) {
            salvage_loose_objects(path, raw);
        }
    } // closed before it moves
    std::error_code error;
    const bool swap = std::filesystem::exists(path, error);
    // One rename: work directories see the old mirror or the new one, never neither.
    const int renamed =
        swap ? ::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, path.c_str(), RENAME_EXCHANGE)
             : ::rename(fresh.c_str(), path.c_str());
    if (renamed != 0) {
        const int saved = errno;
        discard();
        return fail(
            ErrorCode::Io,
            fmt::format("move the new mirror to {}: {}", path.string(), std::strerror(saved)),
            saved);
    }
    discard(); // the old mirror, after a swap
    return open_mirror(path, url);
}

} // namespace ci::git::detail
