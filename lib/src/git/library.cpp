#include "git/library.h"

#include <cstdlib>
#include <mutex>

#include <fmt/format.h>
#include <git2.h>

namespace ci::git::detail {

std::string libgit2_version() {
    int major = 0;
    int minor = 0;
    int revision = 0;
    git_libgit2_version(&major, &minor, &revision);
    return fmt::format("{}.{}.{}", major, minor, revision);
}

namespace {

Status global_init() {
    if (const int count = git_libgit2_init(); count < 0) {
        const git_error* error = git_error_last();
        return fail(ErrorCode::Git,
                    std::string("initialise libgit2: ") +
                        (error != nullptr ? error->message : "unknown error"),
                    count);
    }
    std::atexit([] { git_libgit2_shutdown(); });
    // Objects are hashed once, when a fetch indexes them, as git does; libgit2 would otherwise
    // hash every object again each time it reads one (checkout and merge read tens of
    // thousands).
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
    // libci creates objects (merged trees, merge commits) only from entries it has just read
    // from the object database. libgit2 would look each one up again: writing the tree of a
    // 20,000-file merge took 85 ms with those lookups and 14 ms without.
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_OBJECT_CREATION, 0);
    return {};
}

} // namespace

Status ensure_initialized() {
    static std::once_flag once;
    static Status result;
    std::call_once(once, [] { result = global_init(); });
    return result;
}

} // namespace ci::git::detail
