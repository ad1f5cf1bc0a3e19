// A remote's refs through libgit2, against repositories made with the git CLI, whose own
// `git ls-remote` is the oracle; failures (no repository, a server that never answers) are
// errors that name the URL.

#include <chrono>
#include <filesystem>
#include <iterator>
#include <map>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ci/git/remote.h>

#include "support/git_cli.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using ci::test::git;
using namespace std::chrono_literals;

// What `git ls-remote --heads --tags` says, with annotated tags peeled as the CLI shows them
// ("^{}" lines), read the way git's documentation describes its output.
ci::git::RefMap ls_remote(const std::filesystem::path& repo) {
    ci::git::RefMap refs;
    ci::git::RefMap peeled;
    std::string_view out;
    const std::string text = git(repo, {"ls-remote", "--heads", "--tags", repo.string()});
    out = text;
    while (!out.empty()) {
        const auto end = std::min(out.find('\n'), out.size());
        const auto line = out.substr(0, end);
        out.remove_prefix(std::min(end + 1, out.size()));
        const auto tab = line.find('\t');
        std::string name(line.substr(tab + 1));
        if (name.ends_with("^{}")) {
            name.resize(name.size() - 3);
            peeled[name] = line.substr(0, tab);
        } else {
            refs[name] = line.substr(0, tab);
        }
    }
    for (const auto& [name, id] : peeled) {
        refs[name] = id;
    }
    return refs;
}

// A TCP port on 127.0.0.1 that completes connections (the kernel's backlog) and never answers.
class SilentServer {
public:
    SilentServer() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t size = sizeof address;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), size) == 0); // NOLINT
        REQUIRE(::listen(fd_, 16) == 0);
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &size) == 0); // NOLINT
        port_ = ntohs(address.sin_port);
    }
    ~SilentServer() { close(); }
    SilentServer(const SilentServer&) = delete;
    SilentServer& operator=(const SilentServer&) = delete;

    [[nodiscard]] std::string url(std::string_view path) const {
        return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
    }
    // Resets the connections waiting in the backlog: their clients see the connection end.
    void close() {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
    unsigned port_ = 0;
};

} // namespace

TEST_CASE("remote: branches and tags of a local repository, by path and by file:// URL") {
    ci::test::TempDir dir;
    const auto repo = dir / "repo";
    std::filesystem::create_directories(repo);
    git(repo, {"init", "-q", "-b", "master"});
    git(repo, {"commit", "-q", "--allow-empty", "-m", "one"});
    const std::string first = git(repo, {"rev-parse", "HEAD"});
    git(repo, {"tag", "light"});
    git(repo, {"commit", "-q", "--allow-empty", "-m", "two"});
    git(repo, {"tag", "-a", "-m", "release", "1.0"});
    git(repo, {"branch", "feature/x", first});
    git(repo, {"update-ref", "refs/pull/1/head", first}); // not a branch or a tag: left out
    const std::string second = git(repo, {"rev-parse", "HEAD"});
    const auto expected = ls_remote(repo);
    REQUIRE(expected.size() == 4);

    for (const auto& url : {repo.string(), "file://" + repo.string()}) {
        CAPTURE(url);
        auto refs = ci::git::list_remote_refs(url);
        REQUIRE_OK(refs);
        CHECK(*refs == expected);
        CHECK(refs->at("refs/heads/master") == second);
        CHECK(refs->at("refs/heads/feature/x") == first);
        // The commit, not the tag object.
        CHECK(refs->at("refs/tags/1.0") == second);
        CHECK(git(repo, {"rev-parse", "1.0"}) != second);
        CHECK(refs->at("refs/tags/light") == first);
        CHECK_FALSE(refs->contains("refs/pull/1/head"));
    }

    // An empty repository has no refs: an empty map, not an error.
    const auto empty = dir / "empty.git";
    std::filesystem::create_directories(empty);
    git(empty, {"init", "-q", "--bare"});
    auto none = ci::git::list_remote_refs(empty.string());
    REQUIRE_OK(none);
    CHECK(none->empty());
}

TEST_CASE("remote: a missing repository is an error that names it") {
    ci::test::TempDir dir;
    const auto missing = (dir / "nowhere").string();
    auto refs = ci::git::list_remote_refs(missing);
    REQUIRE_FALSE(refs.has_value());
    CHECK(refs.error().code == ci::ErrorCode::Git);
    CHECK(refs.error().message ==
          "list the refs of " + missing + ": no repository there: " + missing + " does not exist");

    // A directory that is not a repository, by path and by file:// URL: libgit2's words.
    const auto plain = dir / "plain";
    std::filesystem::create_directories(plain);
    const std::map<std::string, std::string> cases = {
        {plain.string(), "could not find repository"},
        {"file://" + plain.string(), "could not find repository"},
        {"file://" + missing, "No such file or directory"},
    };
    for (const auto& [url, why] : cases) {
        auto not_repo = ci::git::list_remote_refs(url);
        REQUIRE_FALSE(not_repo.has_value());
        CHECK(not_repo.error().code == ci::ErrorCode::Git);
        INFO(not_repo.error().message);
        CHECK(not_repo.error().message.starts_with("list the refs of " + url + ": "));
        CHECK(not_repo.error().message.find(why) != std::string::npos);
    }

    auto none = ci::git::list_remote_refs("");
    REQUIRE_FALSE(none.has_value());
    CHECK(none.error().code == ci::ErrorCode::InvalidArgument);
}

TEST_CASE("remote: credentials in the URL never reach the error") {
    // Port 1 on 127.0.0.1: refused at once.
    auto refs = ci::git::list_remote_refs("https://user:s3cr3t-token@127.0.0.1:1/r.git");
    REQUIRE_FALSE(refs.has_value());
    INFO(refs.error().message);
    CHECK(refs.error().code == ci::ErrorCode::Git);
    CHECK(refs.error().message.find("s3cr3t-token") == std::string::npos);
    CHECK(refs.error().message.find("127.0.0.1:1/r.git") != std::string::npos);
}

TEST_CASE("remote: a server that never answers: timeout, stop, and no second hung connection") {
    // The threads of abandoned listings are detached: this test waits for them to be gone at its
    // end (libgit2 frees a thread's state at its exit; LeakSanitizer would see it otherwise).
    const auto threads = [] {
        const auto entries = std::filesystem::directory_iterator("/proc/self/task");
        return std::distance(std::filesystem::begin(entries), std::filesystem::end(entries));
    };
    const auto threads_before = threads();
    SilentServer server;
    ci::git::RemoteOptions options;
    options.timeout = 300ms;
    const auto url = server.url("/app.git");
    auto refs = ci::git::list_remote_refs(url, options);
    REQUIRE_FALSE(refs.has_value());
    CHECK(refs.error().code == ci::ErrorCode::Timeout);
    CHECK(refs.error().message == "list the refs of " + url + ": no answer within 300 ms");

    // The first connection still hangs: the same URL is not tried again meanwhile.
    auto again = ci::git::list_remote_refs(url, options);
    REQUIRE_FALSE(again.has_value());
    CHECK(again.error().code == ci::ErrorCode::Timeout);
    CHECK(again.error().message.find("an earlier listing has not ended") != std::string::npos);

    // A stop request ends the wait (another URL: this one has its own connection).
    std::stop_source stop;
    options.timeout = 1h;
    options.stop = stop.get_token();
    std::jthread stopper([&] {
        std::this_thread::sleep_for(100ms);
        stop.request_stop();
    });
    auto stopped = ci::git::list_remote_refs(server.url("/other.git"), options);
    REQUIRE_FALSE(stopped.has_value());
    CHECK(stopped.error().code == ci::ErrorCode::Cancelled);

    // Once the server goes away, the hung connections end, and their URLs are tried again.
    server.close();
    options = {};
    for (const auto& hung : {url, server.url("/other.git")}) {
        CAPTURE(hung);
        ci::Result<ci::git::RefMap> after = ci::fail(ci::ErrorCode::Internal, "not tried");
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        do {
            std::this_thread::sleep_for(20ms);
            after = ci::git::list_remote_refs(hung, options);
        } while (!after && after.error().code == ci::ErrorCode::Timeout &&
                 std::chrono::steady_clock::now() < deadline);
        REQUIRE_FALSE(after.has_value());
        INFO(after.error().message);
        CHECK(after.error().code == ci::ErrorCode::Git); // connection refused, not "still hung"
    }
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (threads() > threads_before && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(20ms);
    }
    CHECK(threads() <= threads_before);
}
