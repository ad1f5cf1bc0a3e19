#include "ci/git/remote.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <system_error>
#include <thread>
#include <vector>

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

// The threads that list refs, and the URLs whose abandoned listing has not ended yet. A listing
// runs on a thread of its own so that its caller can stop waiting (timeout, stop request) while
// libgit2 still blocks in a connect or read that has no timeout of its own. Threads are joined
// once their listing has returned: by the next listing, and at exit. A thread left to end on its
// own could still be running its exit (libgit2 frees a thread's error state there) when the
// process ends; LeakSanitizer reports that state as leaked.
class ListingThreads {
public:
    // Runs `work` on a new thread; `returned` is set by `work` once it will not block any more.
    // Throws std::system_error when no thread can be started.
    void start(std::function<void()> work, std::shared_ptr<std::atomic<bool>> returned) {
        const std::lock_guard lock(mutex_);
        join_returned();
        threads_.push_back({std::thread(std::move(work)), std::move(returned)});
    }

    // Joins the threads whose listing returned; leaves the ones still blocked in libgit2.
    void join_returned_at_exit() {
        const std::lock_guard lock(mutex_);
        join_returned();
        for (auto& entry : threads_) {
            entry.thread.detach(); // still blocked: the process ends without it
        }
        threads_.clear();
    }

    // Whether an earlier listing of `url` was abandoned and has not ended: `mark` records one.
    bool hung(const std::string& url) {
        const std::lock_guard lock(hung_mutex_);
        return hung_urls_.contains(url);
    }
    void mark_hung(const std::string& url) {
        const std::lock_guard lock(hung_mutex_);
        hung_urls_.insert(url);
    }
    void unmark_hung(const std::string& url) {
        const std::lock_guard lock(hung_mutex_);
        hung_urls_.erase(url);
    }

private:
    struct Entry {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> returned;
    };

    void join_returned() { // with mutex_ held; each join waits at most for a thread's exit
        std::erase_if(threads_, [](Entry& entry) {
            if (!entry.returned->load()) {
                return false;
            }
            entry.thread.join();
            return true;
        });
    }

    // Two mutexes: a thread being joined under mutex_ may still take hung_mutex_.
    std::mutex mutex_;
    std::vector<Entry> threads_; // guarded by mutex_
    std::mutex hung_mutex_;
    std::set<std::string> hung_urls_; // guarded by hung_mutex_
};

// Never destroyed: a thread still blocked at exit may end during static destruction and use it.
// Its exit handler joins the threads that have returned. It must run before libgit2's shutdown
// (a thread ending after it keeps its error state): handlers run in reverse order of
// registration, and this one is registered after libgit2's, on the first call, which
// list_remote_refs makes after initialising libgit2.
ListingThreads& listing_threads() {
    static auto* const threads = [] {
        auto* created = new ListingThreads;
        std::atexit([] { listing_threads().join_returned_at_exit(); });
        return created;
    }();
    return *threads;
}

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
        return detail::remote_failure(what, listing.url, code);
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
    if (listing_threads().hung(url)) {
        return fail(ErrorCode::Timeout,
                    fmt::format("list the refs of {}: an earlier listing has not ended since "
                                "its timeout",
                                shown));
    }
    auto listing = std::make_shared<Listing>();
    listing->url = url;
    listing->credentials.token = options.token;
    listing->credentials.ssh_key = options.ssh_key;
    auto returned = std::make_shared<std::atomic<bool>>(false);
    try {
        listing_threads().start(
            [listing, returned] {
                auto result = read_refs(*listing);
                returned->store(true);
                {
                    const std::lock_guard lock(listing->mutex);
                    listing->result = std::move(result);
                }
                listing->done.notify_all();
                // Set under the listing's mutex by a caller that stopped waiting before the
                // result.
                if (listing->abandoned) {
                    listing_threads().unmark_hung(listing->url);
                }
            },
            returned);
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
    listing_threads().mark_hung(url);
    if (options.stop.stop_requested()) {
        return fail(ErrorCode::Cancelled, fmt::format("list the refs of {}: stopped", shown));
    }
    return fail(
        ErrorCode::Timeout,
        fmt::format("list the refs of {}: no answer within {} ms", shown, options.timeout.count()));
}

} // namespace ci::git
