#pragma once

// What the checkout and the ref listing share when they talk to a remote: RAII for libgit2
// objects, libgit2 errors as ci::Error (redacted), and the answer to libgit2's credential
// requests (an HTTPS token, an SSH key file, or the SSH agent). Host keys are checked by libgit2
// itself against ~/.ssh/known_hosts (no certificate callback is set). Private to lib/src/git.

#include <memory>
#include <string>
#include <string_view>

#include <git2.h>

#include <ci/core/error.h>

namespace ci::git::detail {

/// A libgit2 object freed by `Free` (libgit2's examples free every object on every path).
template <class T, void (*Free)(T*)> struct Deleter {
    void operator()(T* object) const noexcept { Free(object); }
};
using Repository = std::unique_ptr<git_repository, Deleter<git_repository, git_repository_free>>;
using Remote = std::unique_ptr<git_remote, Deleter<git_remote, git_remote_free>>;
using Object = std::unique_ptr<git_object, Deleter<git_object, git_object_free>>;

/// The Error for the libgit2 call that just failed: "WHAT: libgit2's message", redacted
/// (credentials in a URL never reach it), native = libgit2's error class.
[[nodiscard]] std::unexpected<Error> git_failure(std::string_view what, int code);

/// git_failure() for a call that reached remote `url`, except that a local path that does not
/// exist says so ("WHAT: no repository there: PATH does not exist") rather than libgit2's
/// "unsupported URL protocol".
[[nodiscard]] std::unexpected<Error>
remote_failure(std::string_view what, const std::string& url, int code);

/// The credentials offered to one remote, and what was offered last (for the error when the
/// server refuses it).
struct CredentialOffer {
    std::string token;   ///< HTTPS token (a secret); empty: none
    std::string ssh_key; ///< private key file for SSH; empty: the SSH agent
    int attempts = 0;
    std::string offered;

    /// Before each connection: a refused credential is offered again only on a new one.
    void reset() {
        attempts = 0;
        offered.clear();
    }
};

/// libgit2's credentials callback (git_credential_acquire_cb) for `offer`: the token for
/// user/password requests (as "x-access-token"), the key file or else every key of the agent
/// for SSH. One offer per kind: a refused credential ends the connection with GIT_EAUTH and
/// "authentication failed: the server refused ..." instead of looping.
int provide_credentials(git_credential** out,
                        const char* username_from_url,
                        unsigned int allowed,
                        CredentialOffer& offer);

} // namespace ci::git::detail
