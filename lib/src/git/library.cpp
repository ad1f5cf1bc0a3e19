#include "git/library.h"

#include <cstdlib>

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

Status global_init() {
    if (const int count = git_libgit2_init(); count < 0) {
        const git_error* error = git_error_last();
        return fail(ErrorCode::Git,
                    std::string("initialise libgit2: ") +
                        (error != nullptr ? error->message : "unknown error"),
                    count);
    }
    std::atexit([] { git_libgit2_shutdown(); });
    return {};
}

} // namespace ci::git::detail
