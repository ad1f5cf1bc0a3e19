#include "ci/git/remote.h"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <thread>

#include <fmt/format.h>
#include <git2.h>

#include <ci/core/log.h>

#include "git/library.h"
#include "git/transport.h"

namespace ci::git {

namespace {

// One listing, shared by the caller (who may stop waiting for it) and the thread that talks to
// the remote (which may outlive the wait).
struct Listing {
    std::string url;
    detail::CredentialOffer credentials;
    std::atomic<bool> abandoned{false};
    std::mutex mutex;
    std::condition_variable_any done;
    std::optional<Result<RefMap>> result; // guarded by mutex
};

// URLs whose abandoned listing has not ended yet.
std::mutex hung_mutex;
std::set<std::string> hung_urls; // guarded by hung_mutex

int listing_credentials(git_credential** out,
                        const char* /*url*/,
                        const char* username_from_url,
                        unsigned int allowed,
                        void* payload) {
    auto& listing = *static_cast<Listing*>(payload);
    if (listing.abandoned) {
        git_error_set_str(GIT_ERROR_NET, "the caller stopped waiting");
        return GIT_EUSER;
    }
    return detail::provide_credentials(out, username_from_url, allowed, listing.credentials);
}

// Branches and tags of an advertisement; an annotated tag's peeled entry ("refs/tags/x^{}", the
// commit) replaces the tag object's id.
RefMap branches_and_tags(std::span<const git_remote_head* const> heads) {
    RefMap refs;
    RefMap peeled;
    for (const git_remote_head* head : heads) {
        std::string name = head->name;
        if (!name.starts_with("refs/heads/") && !name.starts_with("refs/tags/")) {
            continue;
        }
        std::array<char, GIT_OID_HEXSZ + 1> id{};
        git_oid_tostr(id.data(), id.size(), &head->oid);
        if (name.ends_with("^{}")) {
            name.resize(name.size() - 3);
            peeled[std::move(name)] = id.data();
        } else {
            refs[std::move(name)] = id.data();
        }
    }
    for (auto& [name, id] : peeled) {
        refs[name] = std::move(id);
    }
    return refs;
}

// Whether `url` is a local path rather than a URL or scp-like "host:path" (git's rule: no
// "://", and no ':' before the first '/').
bool is_local_path(std::string_view url) {
    const auto colon = url.find(':');
    return url.find("://") == std::string_view::npos &&
           (colon == std::string_view::npos || url.find('/') < colon);
}

Result<RefMap> read_refs(Listing& listing) {
    const std::string what = fmt::format("list the refs of {}", listing.url);
    git_remote* raw = nullptr;
    if (const int code = git_remote_create_detached(&raw, listing.url.c_str()); code != 0) {
        return detail::git_failure(what, code);
    }
    const detail::Remote remote(raw);
    git_remote_callbacks callbacks{};
    git_remote_init_callbacks(&callbacks, GIT_REMOTE_CALLBACKS_VERSION);
    callbacks.credentials = listing_credentials;
    callbacks.payload = &listing;
    if (const int code =
            git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &callbacks, nullptr, nullptr);
        code != 0) {
        std::error_code ignored;
        if (is_local_path(listing.url) && !std::filesystem::exists(listing.url, ignored)) {
            // libgit2 says "unsupported URL protocol" for a path that does not exist.
            return fail(ErrorCode::Git,
                        fmt::format("{}: no repository there: {} does not exist",
                                    log::redact(what),
                                    listing.url));
        }
        return detail::git_failure(what, code);
    }
    const git_remote_head** heads = nullptr;
    std::size_t count = 0;
    if (const int code = git_remote_ls(&heads, &count, remote.get()); code != 0) {
        return detail::git_failure(what, code);
    }
    auto refs = branches_and_tags({heads, count});
    git_remote_disconnect(remote.get());
    return refs;
}

} // namespace

Result<RefMap> list_remote_refs(const std::string& url, const RemoteOptions& options) {
    if (auto started = detail::ensure_initialized(); !started) {
        return fail(started.error());
    }
    const std::string shown = log::redact(url);
    if (url.empty()) {
        return fail(ErrorCode::InvalidArgument, "list remote refs: no URL given");
    }
    {
        const std::lock_guard lock(hung_mutex);
        if (hung_urls.contains(url)) {
            return fail(ErrorCode::Timeout,
                        fmt::format("list the refs of {}: an earlier listing has not ended since "
                                    "its timeout",
                                    shown));
        }
    }
    auto listing = std::make_shared<Listing>();
    listing->url = url;
    listing->credentials.token = options.token;
    listing->credentials.ssh_key = options.ssh_key;
    try {
        std::thread([listing] {
            auto result = read_refs(*listing);
            {
                const std::lock_guard lock(listing->mutex);
                listing->result = std::move(result);
            }
            listing->done.notify_all();
            // Set under the listing's mutex by a caller that stopped waiting before the result.
            if (listing->abandoned) {
                const std::lock_guard lock(hung_mutex);
                hung_urls.erase(listing->url);
            }
        }).detach();
    } catch (const std::system_error& error) {
        return fail(ErrorCode::Io,
                    fmt::format("list the refs of {}: start a thread: {}", shown, error.what()),
                    error.code().value());
    }
    // A timeout too long to add to now() is no timeout.
    const auto now = std::chrono::steady_clock::now();
    const auto deadline = options.timeout >= std::chrono::steady_clock::time_point::max() - now
                              ? std::chrono::steady_clock::time_point::max()
                              : now + options.timeout;
    std::unique_lock lock(listing->mutex);
    if (listing->done.wait_until(
            lock, options.stop, deadline, [&] { return listing->result.has_value(); })) {
        return std::move(listing->result).value();
    }
    listing->abandoned = true;
    {
        const std::lock_guard hung(hung_mutex);
        hung_urls.insert(url);
    }
    if (options.stop.stop_requested()) {
        return fail(ErrorCode::Cancelled, fmt::format("list the refs of {}: stopped", shown));
    }
    return fail(
        ErrorCode::Timeout,
        fmt::format("list the refs of {}: no answer within {} ms", shown, options.timeout.count()));
}

} // namespace ci::git
