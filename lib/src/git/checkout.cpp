#include "ci/git/checkout.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <memory>
#include <system_error>
#include <unistd.h>

#include <fmt/format.h>
#include <git2.h>
#include <sys/file.h>

#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "git/library.h"
#include "git/mirror.h"
#include "git/transport.h"

namespace ci::git {

namespace {

using detail::git_failure;
using detail::Object;
using detail::Remote;
using detail::remote_failure;
using detail::Repository;

// An exclusive lock on a file beside the mirror, held while it is fetched and merged into, so
// that two builds of one repository on one worker take turns.
class MirrorLock {
public:
    static Result<MirrorLock> acquire(const std::filesystem::path& path) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            return fail(ErrorCode::Io,
                        fmt::format("lock {}: {}", path.string(), std::strerror(errno)),
                        errno);
        }
        while (::flock(fd, LOCK_EX) != 0) {
            if (errno != EINTR) {
                const int error = errno;
                ::close(fd);
                return fail(ErrorCode::Io,
                            fmt::format("lock {}: {}", path.string(), std::strerror(error)),
                            error);
            }
        }
        return MirrorLock(fd);
    }
    MirrorLock(MirrorLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    MirrorLock(const MirrorLock&) = delete;
    MirrorLock& operator=(const MirrorLock&) = delete;
    MirrorLock& operator=(MirrorLock&&) = delete;
    ~MirrorLock() {
        if (fd_ >= 0) {
            ::close(fd_); // releases the lock
        }
    }

private:
    explicit MirrorLock(int fd) : fd_(fd) {}
    int fd_;
};

struct CallbackState {
    const CheckoutOptions* options = nullptr;
    detail::CredentialOffer credentials;
};

int provide_credentials(git_credential** out,
                        const char* /*url*/,
                        const char* username_from_url,
                        unsigned int allowed,
                        void* payload) {
    return detail::provide_credentials(
        out, username_from_url, allowed, static_cast<CallbackState*>(payload)->credentials);
}

int report_transfer(const git_indexer_progress* stats, void* payload) {
    const auto* state = static_cast<CallbackState*>(payload);
    if (state->options->on_progress) {
        const bool indexing = stats->received_objects == stats->total_objects;
        state->options->on_progress(
            Progress{indexing ? Progress::Stage::Indexing : Progress::Stage::Receiving,
                     indexing ? stats->indexed_objects : stats->received_objects,
                     stats->total_objects});
    }
    return 0;
}

void report_checkout(const char* /*path*/, size_t completed, size_t total, void* payload) {
    const auto* state = static_cast<CallbackState*>(payload);
    if (state->options->on_progress) {
        state->options->on_progress(Progress{Progress::Stage::CheckingOut, completed, total});
    }
}

Status fetch(git_repository* repository, const std::string& url, CallbackState& state) {
    git_remote* raw = nullptr;
    if (int code = git_remote_lookup(&raw, repository, "origin"); code != 0) {
        return git_failure(fmt::format("fetch {}", url), code);
    }
    const Remote remote(raw);
    // The *_INIT macros' partial brace lists are missing-field-initializers to clang; the init
    // functions set the same defaults, and fail only for a version other than the headers'.
    git_fetch_options options{};
    (void)git_fetch_options_init(&options, GIT_FETCH_OPTIONS_VERSION);
    options.callbacks.credentials = provide_credentials;
    options.callbacks.transfer_progress = report_transfer;
    options.callbacks.payload = &state;
    options.prune = GIT_FETCH_PRUNE;
    options.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; // the refspec fetches every tag
    state.credentials.reset();
    if (int code = git_remote_fetch(remote.get(), nullptr, &options, nullptr); code != 0) {
        return remote_failure(fmt::format("fetch {}", url), url, code);
    }
    return {};
}

Result<std::string>
resolve(git_repository* repository, const std::string& spec, const std::string& what) {
    git_object* raw = nullptr;
    const std::string peeled = spec + "^{commit}";
    if (int code = git_revparse_single(&raw, repository, peeled.c_str()); code != 0) {
        return git_failure(what, code);
    }
    const Object object(raw);
    std::array<char, GIT_OID_HEXSZ + 1> text{};
    git_oid_tostr(text.data(), text.size(), git_object_id(object.get()));
    return std::string(text.data());
}

// The branch tip (or revision) and, when a target is given, its merge into it, written to the
// mirror.
Result<CheckoutResult> resolve_and_merge(git_repository* repository,
                                         const std::filesystem::path& mirror,
                                         const CheckoutOptions& options) {
    CheckoutResult result;
    const std::string ref =
        options.is_tag ? "refs/tags/" + options.branch : "refs/heads/" + options.branch;
    auto tip = resolve(repository,
                       options.revision.value_or(ref),
                       fmt::format("{} {} in {}",
                                   options.revision ? "commit" : "branch",
                                   options.revision.value_or(options.branch),
                                   log::redact(options.url)));
    if (!tip) {
        return fail(tip.error());
    }
    result.merge.branch_tip = *tip;
    if (options.target) {
        auto target_tip = resolve(
            repository,
            options.target_revision.value_or("refs/heads/" + *options.target),
            options.target_revision
                ? fmt::format("commit {} of merge target {} in {}",
                              *options.target_revision,
                              *options.target,
                              log::redact(options.url))
                : fmt::format("merge target {} in {}", *options.target, log::redact(options.url)));
        if (!target_tip) {
            return fail(target_tip.error());
        }
        auto merged = merge_forward(mirror, *tip, *target_tip, options.identity);
        if (!merged) {
            return fail(merged.error());
        }
        result.merge = std::move(*merged);
        result.target = options.target;
    }
    return result;
}

// The mirror at `path`, fetched: created when absent (atomically, see detail::replace_mirror),
// cloned again when damaged. A fetch that fails while the mirror's data is sound (the remote
// could not be reached, refused the credentials, timed out) is an error and leaves the mirror
// as it was: work directories borrow its objects.
Result<Repository> update_mirror(const std::filesystem::path& path,
                                 const std::string& url,
                                 const detail::Fetch& fetch) {
    std::error_code error;
    if (!std::filesystem::exists(path, error)) {
        return detail::replace_mirror(path, url, fetch);
    }
    std::string damage;
    {
        auto opened = detail::open_mirror(path, url);
        // References whose objects are gone are found before fetching: libgit2 1.5's fetch
        // leaks a reference for each (git_remote_fetch -> git_revparse_single ->
        // git_reference_dwim, seen with valgrind), and such a mirror is cloned again anyway.
        // The shallow check peels each reference once: milliseconds for hundreds of them.
        if (!opened) {
            damage = opened.error().message;
        } else if (auto broken = detail::mirror_damage(path, false)) {
            damage = *broken;
        } else {
            auto fetched = fetch(opened->get());
            if (fetched) {
                return opened;
            }
            auto found = detail::mirror_damage(path, detail::is_data_error(fetched.error()));
            if (!found) {
                Error kept = fetched.error();
                kept.message +=
                    fmt::format(" (the mirror {} is sound and was kept)", path.string());
                return fail(std::move(kept));
            }
            damage = *found;
        }
    }
    log::warn("mirror {} is damaged ({}); cloning it again", path.string(), damage);
    return detail::replace_mirror(path, url, fetch);
}

// The file in .git that marks a work directory as libci's.
constexpr std::string_view checkout_marker = "libci-checkout";

// Whether `git_dir` is the .git directory of a work directory libci checked out: a directory
// (not a link) holding libci's marker, or, for one checked out before libci marked them, whose
// objects are borrowed from a mirror under `cache_dir`.
bool is_libci_checkout(const std::filesystem::path& git_dir,
                       const std::filesystem::path& cache_dir) {
    std::error_code error;
    if (!std::filesystem::is_directory(std::filesystem::symlink_status(git_dir, error))) {
        return false;
    }
    if (std::filesystem::is_regular_file(git_dir / checkout_marker, error)) {
        return true;
    }
    std::ifstream alternates(git_dir / "objects" / "info" / "alternates");
    std::string line;
    const auto cache = std::filesystem::absolute(cache_dir, error).lexically_normal();
    if (!std::getline(alternates, line) || error) {
        return false;
    }
    const auto borrowed = std::filesystem::path(line).lexically_normal();
    return borrowed.parent_path().parent_path() == cache && borrowed.filename() == "objects";
}

// Whether `work_dir` is a libci checkout to reuse (true) or absent or empty (false); anything
// else is an error naming it: a checkout never wipes what it did not make. Unless `owned` (the
// caller's own slot, whose .git a step may have deleted): then it is emptied.
Result<bool> check_work_dir(const std::filesystem::path& work_dir,
                            const std::filesystem::path& cache_dir,
                            bool owned) {
    std::error_code error;
    const auto status = std::filesystem::status(work_dir, error);
    if (status.type() == std::filesystem::file_type::not_found) {
        return false;
    }
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("{} cannot be read: {}", work_dir.string(), error.message()));
    }
    if (!std::filesystem::is_directory(status)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} is not a directory: a checkout needs a directory, empty or "
                                "checked out by libci before",
                                work_dir.string()));
    }
    if (is_libci_checkout(work_dir / ".git", cache_dir)) {
        return true;
    }
    const bool empty = std::filesystem::is_empty(work_dir, error);
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("{} cannot be read: {}", work_dir.string(), error.message()));
    }
    if (!empty && owned) {
        log::warn("{} is not a libci checkout any more (a step deleted its .git?): emptying it, "
                  "as it is this worker's own work directory",
                  work_dir.string());
        for (const auto& entry : std::filesystem::directory_iterator(work_dir, error)) {
            // remove_all removes a link itself, never what it points to.
            std::filesystem::remove_all(entry.path(), error);
            if (error) {
                return fail(ErrorCode::Io,
                            fmt::format("empty {}: remove {}: {}",
                                        work_dir.string(),
                                        entry.path().string(),
                                        error.message()));
            }
        }
        if (error) {
            return fail(ErrorCode::Io,
                        fmt::format("empty {}: {}", work_dir.string(), error.message()));
        }
        return false;
    }
    if (!empty) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} is not empty and not a libci checkout (no .git/{}): a "
                                "checkout would delete its files; empty it or choose another "
                                "directory",
                                work_dir.string(),
                                checkout_marker));
    }
    return false;
}

// A work directory whose repository borrows the mirror's objects: `work_dir`'s own repository
// when `reuse` (check_work_dir said it is a libci checkout), else a new one.
Result<Repository> open_work_dir(const std::filesystem::path& work_dir,
                                 const std::filesystem::path& mirror,
                                 const std::string& url,
                                 bool reuse) {
    std::error_code error;
    std::filesystem::create_directories(work_dir, error);
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("create {}: {}", work_dir.string(), error.message()));
    }
    git_repository* raw = nullptr;
    if (int code = reuse ? git_repository_open_ext(
                               &raw, work_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr)
                         : git_repository_init(&raw, work_dir.c_str(), 0);
        code != 0) {
        return git_failure(
            fmt::format("{} work directory {}", reuse ? "open" : "create", work_dir.string()),
            code);
    }
    Repository repository(raw);
    const std::filesystem::path git_dir = git_repository_path(raw);
    std::ofstream(git_dir / checkout_marker)
        << "A work directory libci checks out; its objects are borrowed from "
        << std::filesystem::absolute(mirror).string() << "\n";
    const auto alternates = git_dir / "objects" / "info" / "alternates";
    std::filesystem::create_directories(alternates.parent_path(), error);
    std::ofstream(alternates) << std::filesystem::absolute(mirror / "objects").string() << "\n";
    // origin names the repository's URL (never with credentials: those go through the
    // callback), against which relative submodule URLs ("../lib.git") resolve, as in a clone.
    git_remote* remote = nullptr;
    if (git_remote_lookup(&remote, repository.get(), "origin") == 0) {
        const Remote existing(remote);
        if (url != git_remote_url(remote)) {
            git_remote_set_url(repository.get(), "origin", url.c_str());
        }
    } else if (int code = git_remote_create(&remote, repository.get(), "origin", url.c_str());
               code == 0) {
        git_remote_free(remote);
    } else {
        return git_failure(fmt::format("set origin in {}", work_dir.string()), code);
    }
    // Reopen so that libgit2 reads the alternates just written.
    git_repository_free(repository.release());
    if (int code =
            git_repository_open_ext(&raw, work_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
        code != 0) {
        return git_failure(fmt::format("open work directory {}", work_dir.string()), code);
    }
    return Repository(raw);
}

// Removes every symbolic link under `work_dir` that its index does not hold at that path (the
// tree's own links are the checkout's to change), following none and skipping .git
// directories: a link a build left must not lead the checkout's writes and deletions out of the
// directory.
Status remove_symlinks(git_repository* repository, const std::filesystem::path& work_dir) {
    git_index* index = nullptr;
    if (int code = git_repository_index(&index, repository); code != 0) {
        return git_failure(fmt::format("read the index of {}", work_dir.string()), code);
    }
    const std::unique_ptr<git_index, detail::Deleter<git_index, git_index_free>> owned(index);
    const auto tracked_link = [&](const std::filesystem::path& path) {
        const std::string relative = path.lexically_relative(work_dir).generic_string();
        const git_index_entry* found = git_index_get_bypath(index, relative.c_str(), 0);
        return found != nullptr && found->mode == GIT_FILEMODE_LINK;
    };
    std::error_code error;
    std::filesystem::recursive_directory_iterator entry(work_dir, error);
    for (const std::filesystem::recursive_directory_iterator end; !error && entry != end;
         entry.increment(error)) {
        if (entry->is_symlink(error)) {
            if (tracked_link(entry->path())) {
                continue;
            }
            std::filesystem::remove(entry->path(), error);
            if (error) {
                return fail(
                    ErrorCode::Io,
                    fmt::format("remove the link {}: {}", entry->path().string(), error.message()));
            }
        } else if (entry->path().filename() == ".git") {
            entry.disable_recursion_pending();
        }
    }
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("look for links in {}: {}", work_dir.string(), error.message()));
    }
    return {};
}

// Whether some file of libgit2's search path `level` exists under the name `name`.
bool search_path_has(int level, const char* name) {
    git_buf paths = GIT_BUF_INIT;
    if (git_libgit2_opts(GIT_OPT_GET_SEARCH_PATH, level, &paths) != 0) {
        git_error_clear();
        return true; // cannot tell: assume it does
    }
    const std::string list(paths.ptr != nullptr ? paths.ptr : "");
    git_buf_dispose(&paths);
    std::size_t start = 0;
    while (start <= list.size()) {
        const std::size_t end = std::min(list.find(':', start), list.size());
        if (end > start) {
            const std::filesystem::path dir = list.substr(start, end - start);
            std::error_code ignored;
            if (std::filesystem::exists(dir / name, ignored)) {
                return true;
            }
        }
        start = end + 1;
    }
    return false;
}

int find_gitattributes(const char* /*root*/, const git_tree_entry* entry, void* payload) {
    if (std::strcmp(git_tree_entry_name(entry), ".gitattributes") == 0) {
        *static_cast<bool*>(payload) = true;
        return -1; // stops the walk
    }
    return 0;
}

// Whether checking `commit` out could change a file's content on the way (end-of-line
// conversion, ident, a filter driver): only when core.autocrlf is true or some gitattributes
// file exists (in the tree, in .git/info, core.attributesFile, the user's or the system's).
// Otherwise filters are turned off, which is exact, and spares libgit2 two realpath() calls per
// file while it looks for attributes that are not there.
bool may_apply_filters(git_repository* repository, git_object* commit) {
    git_config* config = nullptr;
    if (git_repository_config_snapshot(&config, repository) != 0) {
        git_error_clear();
        return true;
    }
    int autocrlf = 0;
    git_buf attributes_file = GIT_BUF_INIT;
    const bool configured =
        (git_config_get_bool(&autocrlf, config, "core.autocrlf") == 0 && autocrlf != 0) ||
        git_config_get_string_buf(&attributes_file, config, "core.attributesfile") == 0;
    git_buf_dispose(&attributes_file);
    git_config_free(config);
    git_error_clear();
    if (configured) {
        return true;
    }
    std::error_code ignored;
    const std::filesystem::path git_dir = git_repository_commondir(repository);
    if (std::filesystem::exists(git_dir / "info" / "attributes", ignored) ||
        search_path_has(GIT_CONFIG_LEVEL_XDG, "attributes") ||
        search_path_has(GIT_CONFIG_LEVEL_SYSTEM, "gitattributes")) {
        return true;
    }
    git_tree* tree = nullptr;
    if (git_commit_tree(&tree, reinterpret_cast<git_commit*>(commit)) != 0) { // NOLINT
        git_error_clear();
        return true;
    }
    bool found = false;
    const int walked = git_tree_walk(tree, GIT_TREEWALK_PRE, find_gitattributes, &found);
    git_tree_free(tree);
    if (walked < 0 && !found) {
        git_error_clear();
        return true; // the walk failed: do not guess
    }
    return found;
}

Status check_out(git_repository* repository,
                 const std::string& commit,
                 CallbackState& state,
                 const std::filesystem::path& work_dir) {
    git_oid oid;
    git_oid_fromstr(&oid, commit.c_str());
    git_object* raw = nullptr;
    if (int code = git_object_lookup(&raw, repository, &oid, GIT_OBJECT_COMMIT); code != 0) {
        return git_failure(fmt::format("check out {} in {}", commit, work_dir.string()), code);
    }
    const Object object(raw);
    git_checkout_options options{}; // as in fetch(): the init function, not the macro
    (void)git_checkout_options_init(&options, GIT_CHECKOUT_OPTIONS_VERSION);
    // Whatever an earlier build left (changes, untracked and ignored files) goes.
    options.checkout_strategy =
        GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
    options.disable_filters = may_apply_filters(repository, object.get()) ? 0 : 1;
    options.progress_cb = report_checkout;
    options.progress_payload = &state;
    if (int code = git_checkout_tree(repository, object.get(), &options); code != 0) {
        return git_failure(fmt::format("check out {} in {}", commit, work_dir.string()), code);
    }
    if (int code = git_repository_set_head_detached(repository, &oid); code != 0) {
        return git_failure(fmt::format("set HEAD in {}", work_dir.string()), code);
    }
    return {};
}

struct SubmoduleWalk {
    CallbackState* state;
    git_repository* repository;     // whose submodules are walked
    std::filesystem::path work_dir; // its work directory
    std::optional<Error> error;
};

// The URL of `repository`'s origin, which relative submodule URLs start from.
std::string origin_url(git_repository* repository) {
    git_remote* raw = nullptr;
    if (git_remote_lookup(&raw, repository, "origin") != 0) {
        git_error_clear();
        return {};
    }
    const Remote remote(raw);
    const char* url = git_remote_url(remote.get());
    return url != nullptr ? url : "";
}

Status update_submodules(git_repository* repository,
                         CallbackState& state,
                         const std::filesystem::path& work_dir);

// Opens the submodule's repository, creating it (under .git/modules) when this work directory
// has none yet, with origin at `url`. Done here rather than by git_submodule_update, which in
// libgit2 1.5 clones into the submodule's path taken relative to the process's working
// directory, and resolves relative URLs against file:// URLs wrongly.
Result<Repository> open_submodule(git_repository* superproject,
                                  git_submodule* submodule,
                                  const std::string& url,
                                  const std::string& what) {
    git_repository* raw = nullptr;
    if (git_submodule_open(&raw, submodule) != 0) {
        git_error_clear();
        git_config* config = nullptr;
        if (int code = git_repository_config(&config, superproject); code != 0) {
            return git_failure(what, code);
        }
        const std::string key = fmt::format("submodule.{}.url", git_submodule_name(submodule));
        const int set = git_config_set_string(config, key.c_str(), url.c_str());
        git_config_free(config);
        if (set != 0) {
            return git_failure(what, set);
        }
        if (int code = git_submodule_repo_init(&raw, submodule, /*use_gitlink=*/1); code != 0) {
            return git_failure(what, code);
        }
    }
    Repository repository(raw);
    if (origin_url(repository.get()) != url) {
        git_remote* remote = nullptr;
        if (git_remote_lookup(&remote, repository.get(), "origin") == 0) {
            git_remote_free(remote);
            git_remote_set_url(repository.get(), "origin", url.c_str());
        } else if (int code = git_remote_create(&remote, repository.get(), "origin", url.c_str());
                   code == 0) {
            git_remote_free(remote);
        } else {
            return git_failure(what, code);
        }
    }
    return repository;
}

// Whether `url` names a repository on this machine: file://, or a path (git's "local"
// transport; not scp-like "host:path", where a colon comes before any slash).
bool is_local_url(std::string_view url) {
    if (url.starts_with("file://")) {
        return true;
    }
    if (url.find("://") != std::string_view::npos) {
        return false;
    }
    const std::size_t colon = url.find(':');
    return colon == std::string_view::npos || url.find('/') < colon;
}

int update_submodule(git_submodule* submodule, const char* name, void* payload) {
    auto& walk = *static_cast<SubmoduleWalk*>(payload);
    const auto where = walk.work_dir / git_submodule_path(submodule);
    const char* recorded = git_submodule_url(submodule);
    const std::string url =
        recorded != nullptr ? submodule_url(origin_url(walk.repository), recorded) : "";
    const std::string what = log::redact(fmt::format(
        "submodule {} ({}) in {}", name, url.empty() ? "no URL" : url, walk.work_dir.string()));
    const auto record = [&](Error error) {
        walk.error = std::move(error);
        return -1;
    };
    const git_oid* commit_id = git_submodule_index_id(submodule);
    if (commit_id == nullptr) {
        return record(Error{ErrorCode::Git, what + ": the tree records no commit for it", {}});
    }
    if (url.empty()) {
        return record(Error{ErrorCode::Git, what + ": .gitmodules gives it no URL", {}});
    }
    if (!walk.state->options->allow_local_submodules && is_local_url(url)) {
        return record(Error{ErrorCode::Git,
                            what + ": a local path or file:// URL, refused unless the "
                                   "repository allows local submodules (as git refuses them "
                                   "since 2.38.1, CVE-2022-39253)",
                            {}});
    }
    auto repository = open_submodule(walk.repository, submodule, url, what);
    if (!repository) {
        return record(repository.error());
    }
    git_object* raw = nullptr;
    if (git_object_lookup(&raw, repository->get(), commit_id, GIT_OBJECT_COMMIT) != 0) {
        git_error_clear();
        git_remote* remote_raw = nullptr;
        if (int code = git_remote_lookup(&remote_raw, repository->get(), "origin"); code != 0) {
            return record(git_failure(what, code).error());
        }
        const Remote remote(remote_raw);
        git_fetch_options options{}; // as in fetch(): the init function, not the macro
        (void)git_fetch_options_init(&options, GIT_FETCH_OPTIONS_VERSION);
        options.callbacks.credentials = provide_credentials;
        options.callbacks.transfer_progress = report_transfer;
        options.callbacks.payload = walk.state;
        walk.state->credentials.reset();
        if (int code = git_remote_fetch(remote.get(), nullptr, &options, nullptr); code != 0) {
            return record(git_failure(what, code).error());
        }
        if (int code = git_object_lookup(&raw, repository->get(), commit_id, GIT_OBJECT_COMMIT);
            code != 0) {
            return record(git_failure(what + ": the recorded commit", code).error());
        }
    }
    const Object commit(raw);
    std::array<char, GIT_OID_HEXSZ + 1> text{};
    git_oid_tostr(text.data(), text.size(), commit_id);
    if (auto status = check_out(repository->get(), text.data(), *walk.state, where); !status) {
        return record(status.error());
    }
    if (auto status = update_submodules(repository->get(), *walk.state, where); !status) {
        return record(status.error());
    }
    return 0;
}

// Initializes and checks out every submodule of `repository`, then theirs.
Status update_submodules(git_repository* repository,
                         CallbackState& state,
                         const std::filesystem::path& work_dir) {
    SubmoduleWalk walk{&state, repository, work_dir, std::nullopt};
    if (int code = git_submodule_foreach(repository, update_submodule, &walk); code != 0) {
        if (walk.error) {
            return fail(*walk.error);
        }
        return git_failure(fmt::format("list submodules in {}", work_dir.string()), code);
    }
    return {};
}

} // namespace

std::string submodule_url(std::string_view superproject, std::string_view url) {
    if (!url.starts_with("./") && !url.starts_with("../")) {
        return std::string(url);
    }
    std::string base(superproject);
    while (base.size() > 1 && base.back() == '/') {
        base.pop_back();
    }
    char separator = '/';
    for (;;) {
        if (url.starts_with("./")) {
            url.remove_prefix(2);
        } else if (url.starts_with("../")) {
            url.remove_prefix(3);
            const std::size_t slash = base.find_last_of('/');
            const std::size_t colon = base.find_last_of(':');
            if (slash != std::string::npos && (colon == std::string::npos || slash > colon)) {
                base.resize(slash);
                separator = '/';
            } else if (colon != std::string::npos) {
                base.resize(colon); // scp-like host:path
                separator = ':';
            } else {
                base.assign(1, '.'); // not = ".": GCC 12 -O3 -Wrestrict false positive (PR 105329)
                separator = '/';
            }
        } else {
            break;
        }
    }
    return base + separator + std::string(url);
}

Result<std::string> head_commit(const std::filesystem::path& work_dir) {
    if (auto started = detail::ensure_initialized(); !started) {
        return fail(started.error());
    }
    git_repository* raw = nullptr;
    if (const int code =
            git_repository_open_ext(&raw, work_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr);
        code != 0) {
        return git_failure(fmt::format("open {}", work_dir.string()), code);
    }
    const Repository repository(raw);
    const char* root = git_repository_workdir(raw);
    std::error_code error;
    if (root == nullptr || !std::filesystem::equivalent(root, work_dir, error)) {
        return fail(
            ErrorCode::Git,
            fmt::format("open {}: not the work directory of its repository", work_dir.string()));
    }
    git_oid head;
    if (const int code = git_reference_name_to_id(&head, raw, "HEAD"); code != 0) {
        return git_failure(fmt::format("read HEAD in {}", work_dir.string()), code);
    }
    std::array<char, GIT_OID_HEXSZ + 1> text{};
    git_oid_tostr(text.data(), text.size(), &head);
    return std::string(text.data());
}

std::filesystem::path mirror_path(const std::filesystem::path& cache_dir, const std::string& url) {
    // A readable name plus a hash of the whole URL: two hosts' "app.git" stay apart.
    std::string name = url.substr(url.find_last_of("/:") + 1);
    if (name.ends_with(".git")) {
        name.resize(name.size() - 4);
    }
    for (char& c : name) {
        const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        c = plain ? c : '_';
    }
    const std::string hash = crypto::to_hex(crypto::sha256(url)).substr(0, 16);
    return cache_dir / fmt::format("{}-{}.git", name.empty() ? "repo" : name, hash);
}

Result<CheckoutResult> checkout(const std::filesystem::path& work_dir,
                                const CheckoutOptions& options) {
    if (auto started = detail::ensure_initialized(); !started) {
        return fail(started.error());
    }
    if (options.url.empty() || options.branch.empty()) {
        return fail(ErrorCode::InvalidArgument, "checkout: a URL and a branch are required");
    }
    // Before anything changes: a DEST that is not ours is refused untouched.
    const auto reuse = check_work_dir(work_dir, options.cache_dir, options.owned_work_dir);
    if (!reuse) {
        return fail(reuse.error());
    }
    std::error_code io_error;
    std::filesystem::create_directories(options.cache_dir, io_error);
    if (io_error) {
        return fail(
            ErrorCode::Io,
            fmt::format("create cache {}: {}", options.cache_dir.string(), io_error.message()));
    }
    const auto mirror = mirror_path(options.cache_dir, options.url);
    CallbackState state{&options, {options.token, options.ssh_key, 0, {}}};
    CheckoutResult result;
    {
        auto lock = MirrorLock::acquire(mirror.string() + ".lock");
        if (!lock) {
            return fail(lock.error());
        }
        const detail::Fetch fetch_origin = [&](git_repository* repository) {
            return fetch(repository, options.url, state);
        };
        auto repository = update_mirror(mirror, options.url, fetch_origin);
        if (!repository) {
            return fail(repository.error());
        }
        // Data found missing or unreadable only now (a fetch does not read every object it
        // already has) is damage too when the mirror's check confirms it: cloned again, once.
        for (int attempt = 0;; ++attempt) {
            auto merged = resolve_and_merge(repository->get(), mirror, options);
            if (merged) {
                result = std::move(*merged);
                break;
            }
            if (attempt > 0 || !detail::is_data_error(merged.error())) {
                return fail(merged.error());
            }
            const auto damage = detail::mirror_damage(mirror, /*deep=*/true);
            if (!damage) {
                return fail(merged.error());
            }
            log::warn("mirror {} is damaged ({}); cloning it again", mirror.string(), *damage);
            repository->reset();
            repository = detail::replace_mirror(mirror, options.url, fetch_origin);
            if (!repository) {
                return fail(repository.error());
            }
        }
    }
    auto work = open_work_dir(work_dir, mirror, options.url, *reuse);
    if (!work) {
        return fail(work.error());
    }
    if (*reuse) {
        if (auto status = remove_symlinks(work->get(), work_dir); !status) {
            return fail(status.error());
        }
    }
    // A conflict leaves the work directory clean, on the branch tip.
    result.checked_out =
        result.merge.conflicted() ? result.merge.branch_tip : result.merge.result();
    if (auto status = check_out(work->get(), result.checked_out, state, work_dir); !status) {
        return fail(status.error());
    }
    if (options.submodules) {
        if (auto status = update_submodules(work->get(), state, work_dir); !status) {
            return fail(status.error());
        }
    }
    return result;
}

} // namespace ci::git
