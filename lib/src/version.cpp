#include "ci/version.h"

#include <mutex>

#include <openssl/crypto.h>

#include "git/library.h" // libgit2_version
#include "http/library.h"

namespace ci {

std::string_view version() noexcept {
    return CI_VERSION;
}

std::vector<LibraryVersion> library_versions() {
    return {
        {"libcurl", http::detail::curl_version()},
        {"OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING)},
        {"libgit2", git::detail::libgit2_version()},
    };
}

Status initialize() {
    static std::once_flag once;
    static Status result;
    std::call_once(once, [] {
        // libgit2 starts on the git module's first use (git::detail::ensure_initialized).
        result = http::detail::global_init();
    });
    return result;
}

} // namespace ci
