#include "git/transport.h"

#include <filesystem>

#include <fmt/format.h>

#include <ci/core/log.h>

namespace ci::git::detail {

std::unexpected<Error> git_failure(std::string_view what, int code) {
    const git_error* error = git_error_last();
    return fail(ErrorCode::Git,
                log::redact(fmt::format(
                    "{}: {}", what, error != nullptr ? error->message : "unknown error")),
                error != nullptr ? error->klass : code);
}

namespace {
// Whether `url` is a local path rather than a URL or scp-like "host:path" (git's rule: no
// "://", and no ':' before the first '/').
bool is_local_path(std::string_view url) {
    const auto colon = url.find(':');
    return url.find("://") == std::string_view::npos &&
           (colon == std::string_view::npos || url.find('/') < colon);
}
} // namespace

std::unexpected<Error> remote_failure(std::string_view what, const std::string& url, int code) {
    std::error_code ignored;
    if (is_local_path(url) && !std::filesystem::exists(url, ignored)) {
        // libgit2 says "unsupported URL protocol" for a path that does not exist.
        return fail(ErrorCode::Git,
                    fmt::format("{}: no repository there: {} does not exist",
                                log::redact(what),
                                log::redact(url)));
    }
    return git_failure(what, code);
}

int provide_credentials(git_credential** out,
                        const char* username_from_url,
                        unsigned int allowed,
                        CredentialOffer& offer) {
    // One offer per kind: a refused credential must end the connection, not loop.
    if (++offer.attempts > 2) {
        const std::string message =
            fmt::format("authentication failed: the server refused {}",
                        offer.offered.empty() ? "the credentials" : offer.offered);
        git_error_set_str(GIT_ERROR_NET, message.c_str());
        return GIT_EAUTH;
    }
    if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) != 0) {
        if (offer.token.empty()) {
            git_error_set_str(GIT_ERROR_NET, "the server wants credentials and no token was given");
            return GIT_EAUTH;
        }
        offer.offered = "the token";
        return git_credential_userpass_plaintext_new(out, "x-access-token", offer.token.c_str());
    }
    const char* user = username_from_url != nullptr ? username_from_url : "git";
    if ((allowed & GIT_CREDENTIAL_SSH_KEY) != 0) {
        if (!offer.ssh_key.empty()) {
            offer.offered = fmt::format("the SSH key {}", offer.ssh_key);
            return git_credential_ssh_key_new(out, user, nullptr, offer.ssh_key.c_str(), nullptr);
        }
        offer.offered = "every key of the SSH agent (no key file was given)";
        return git_credential_ssh_key_from_agent(out, user);
    }
    if ((allowed & GIT_CREDENTIAL_USERNAME) != 0) {
        return git_credential_username_new(out, user);
    }
    git_error_set_str(GIT_ERROR_NET, "the server wants credentials of a kind libci cannot give");
    return GIT_EAUTH;
}

} // namespace ci::git::detail
