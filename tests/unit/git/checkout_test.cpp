// Checkouts from a mirror cache: merged forward, reused, fetched incrementally, concurrent,
// and recovered when the mirror is damaged. Repositories are made with the git CLI.

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <ci/core/log.h>
#include <ci/git/checkout.h>

#include "support/background_process.h"
#include "support/git_cli.h"
#include "support/origin.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using ci::test::git;

using ci::test::Origin;

ci::git::CheckoutOptions options_for(const Origin& origin,
                                     const std::filesystem::path& cache,
                                     const std::string& branch,
                                     std::optional<std::string> target = "master") {
    ci::git::CheckoutOptions options;
    options.url = origin.url();
    options.cache_dir = cache;
    options.branch = branch;
    options.target = std::move(target);
    return options;
}

} // namespace

TEST_CASE("checkout: a branch merged forward onto master, in a reusable work directory") {
    Origin origin;
    ci::test::TempDir dir;
    const auto work = dir / "work";
    std::vector<ci::git::Progress::Stage> stages;
    auto options = options_for(origin, dir / "cache", "feature");
    options.on_progress = [&](const ci::git::Progress& p) { stages.push_back(p.stage); };
    auto result = ci::git::checkout(work, options);
    REQUIRE_OK(result);
    CHECK(result->merge.branch_tip == origin.feature_tip);
    CHECK(result->merge.target_tip == origin.master_tip);
    CHECK(result->target == "master");
    REQUIRE_FALSE(result->merge.merge_commit.empty());
    CHECK(result->checked_out == result->merge.merge_commit);
    CHECK(ci::test::read_file(work / "a.txt") == "a2 from master\n");
    CHECK(ci::test::read_file(work / "b.txt") == "b2 from feature\n");
    CHECK(git(work, {"rev-parse", "HEAD"}) == result->merge.merge_commit);
    CHECK(git(work, {"log", "-1", "--format=%an <%ae> %s"}) ==
          "libci <ci@localhost> Merge forward.");
    CHECK(std::ranges::find(stages, ci::git::Progress::Stage::CheckingOut) != stages.end());

    // Reused: local edits, untracked and ignored files are gone after the next checkout.
    ci::test::write_file(work / "a.txt", "edited by a build\n");
    ci::test::write_file(work / "untracked.txt", "x");
    ci::test::write_file(work / "build.log", "ignored");
    auto again = ci::git::checkout(work, options);
    REQUIRE_OK(again);
    CHECK(again->merge.merge_commit == result->merge.merge_commit); // reproducible
    CHECK(ci::test::read_file(work / "a.txt") == "a2 from master\n");
    CHECK_FALSE(std::filesystem::exists(work / "untracked.txt"));
    CHECK_FALSE(std::filesystem::exists(work / "build.log"));

    // Incremental: a new master commit arrives with the next fetch.
    ci::test::write_file(origin.repo / "c.txt", "c\n");
    const std::string newer = origin.commit("more master");
    auto fetched = ci::git::checkout(work, options);
    REQUIRE_OK(fetched);
    CHECK(fetched->merge.target_tip == newer);
    CHECK(std::filesystem::exists(work / "c.txt"));
}

TEST_CASE("checkout: no target, an exact revision, a tag") {
    Origin origin;
    ci::test::TempDir dir;
    auto plain =
        ci::git::checkout(dir / "w1", options_for(origin, dir / "cache", "master", std::nullopt));
    REQUIRE_OK(plain);
    CHECK(plain->checked_out == origin.master_tip);
    CHECK(plain->merge.merge_commit.empty());
    CHECK_FALSE(plain->target.has_value());

    git(origin.repo, {"tag", "-a", "-m", "release", "1.0", origin.master_tip});
    auto tagged = options_for(origin, dir / "cache", "1.0", std::nullopt);
    tagged.is_tag = true;
    auto tag = ci::git::checkout(dir / "w2", tagged);
    REQUIRE_OK(tag);
    CHECK(tag->checked_out == origin.master_tip);

    auto exact = options_for(origin, dir / "cache", "feature", std::nullopt);
    exact.revision = origin.feature_tip;
    auto revision = ci::git::checkout(dir / "w3", exact);
    REQUIRE_OK(revision);
    CHECK(revision->checked_out == origin.feature_tip);
}

TEST_CASE("checkout: a local path that does not exist says so") {
    ci::test::TempDir dir;
    ci::git::CheckoutOptions options;
    options.url = (dir / "nowhere").string();
    options.cache_dir = dir / "cache";
    options.branch = "master";
    auto result = ci::git::checkout(dir / "w", options);
    REQUIRE_FALSE(result.has_value());
    // libgit2 alone says "unsupported URL protocol".
    CHECK(result.error().message.find("no repository there: " + options.url + " does not exist") !=
          std::string::npos);
    CHECK(result.error().message.find("unsupported URL protocol") == std::string::npos);
}

TEST_CASE("checkout: files come out byte for byte as git checks them out, attributes or not") {
    // Without any gitattributes libci turns libgit2's filters off (exact, and faster); with
    // them, end-of-line conversion and ident apply as they do for git. The oracle is a clone
    // checked out by the git CLI.
    Origin origin;
    ci::test::write_file(origin.repo / "lines.txt", "one\ntwo\n");
    ci::test::write_file(origin.repo / "id.c", "/* $Id$ */\n");
    ci::test::write_file(origin.repo / "data.bin", std::string("a\nb\0c\r\n", 7));
    const std::string plain_tip = origin.commit("no attributes");
    git(origin.repo, {"checkout", "-q", "-b", "attributes"});
    ci::test::write_file(origin.repo / ".gitattributes", "*.txt text eol=crlf\n*.c ident\n");
    ci::test::write_file(origin.repo / "sub" / ".gitattributes", "*.md text eol=crlf\n");
    ci::test::write_file(origin.repo / "sub" / "notes.md", "x\ny\n");
    origin.commit("attributes");
    git(origin.repo, {"checkout", "-q", "master"});
    ci::test::TempDir dir;
    for (const std::string branch : {"master", "attributes"}) {
        CAPTURE(branch);
        const auto ours = dir / ("ours-" + branch);
        REQUIRE_OK(
            ci::git::checkout(ours, options_for(origin, dir / "cache", branch, std::nullopt)));
        const auto theirs = dir / ("theirs-" + branch);
        git(dir.path(), {"clone", "-q", "-b", branch, origin.url(), theirs.string()});
        for (const char* file : {"a.txt", "lines.txt", "id.c", "data.bin", "sub/notes.md"}) {
            CAPTURE(file);
            CHECK(std::filesystem::exists(ours / file) == std::filesystem::exists(theirs / file));
            if (std::filesystem::exists(theirs / file)) {
                CHECK(ci::test::read_file(ours / file) == ci::test::read_file(theirs / file));
            }
        }
        if (branch == "attributes") {
            CHECK(ci::test::read_file(ours / "lines.txt") == "one\r\ntwo\r\n");
            CHECK(ci::test::read_file(ours / "sub" / "notes.md") == "x\r\ny\r\n");
            CHECK(ci::test::read_file(ours / "id.c").starts_with("/* $Id: "));
        } else {
            CHECK(ci::test::read_file(ours / "lines.txt") == "one\ntwo\n");
        }
    }
    CHECK_FALSE(plain_tip.empty());
}

TEST_CASE("checkout: submodule URLs on this machine are refused unless allowed") {
    // The oracle: git (>= 2.38.1) with its default protocol.file.allow=user refuses exactly
    // these in `git submodule update`; checked here by the URL's form, as git's transport
    // choice does.
    Origin origin;
    ci::test::TempDir dir;
    const auto lib = dir / "lib";
    std::filesystem::create_directories(lib);
    git(lib, {"init", "-q", "-b", "master"});
    ci::test::write_file(lib / "lib.txt", "lib\n");
    git(lib, {"add", "-A"});
    git(lib, {"commit", "-q", "-m", "lib"});
    for (const std::string& url : {"file://" + lib.string(), lib.string()}) {
        CAPTURE(url);
        const std::string branch = url.starts_with("file:") ? "sub-url" : "sub-path";
        git(origin.repo, {"checkout", "-q", "-b", branch, origin.master_tip});
        git(origin.repo,
            {"-c", "protocol.file.allow=always", "submodule", "add", "-q", url, branch});
        origin.commit("lib as a submodule");
        git(origin.repo, {"checkout", "-q", "master"});
        std::filesystem::remove_all(origin.repo / branch); // git leaves the submodule there
        // git refuses it by default:
        const auto clone = dir / ("clone-" + branch);
        git(dir.path(), {"clone", "-q", "-b", branch, origin.repo.string(), clone.string()});
        CHECK(ci::test::run_git(clone, {"submodule", "update", "--init"}).status != 0);
        auto options = options_for(origin, dir / "cache", branch, std::nullopt);
        options.submodules = true;
        auto refused = ci::git::checkout(dir / ("w-" + branch), options);
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().message.find("refused unless") != std::string::npos);
        options.allow_local_submodules = true;
        auto allowed = ci::git::checkout(dir / ("w-" + branch), options);
        REQUIRE_OK(allowed);
        CHECK(ci::test::read_file(dir / ("w-" + branch) / branch / "lib.txt") == "lib\n");
    }
}

TEST_CASE("checkout: relative submodule URLs resolve as git resolves them") {
    const std::vector<std::array<std::string, 3>> cases = {
        {"https://github.com/org/app.git", "../lib.git", "https://github.com/org/lib.git"},
        {"https://github.com/org/app.git/", "../lib.git", "https://github.com/org/lib.git"},
        {"https://github.com/org/app", "./lib", "https://github.com/org/app/lib"},
        {"https://github.com/org/app.git",
         "../../other/lib.git",
         "https://github.com/other/lib.git"},
        {"git@github.com:org/app.git", "../lib.git", "git@github.com:org/lib.git"},
        {"git@github.com:app.git", "../lib.git", "git@github.com:lib.git"},
        {"file:///srv/git/app", "../lib", "file:///srv/git/lib"},
        {"ssh://git@host:2222/srv/app.git", "../lib.git", "ssh://git@host:2222/srv/lib.git"},
        {"https://github.com/org/app.git",
         "https://example.org/x.git",
         "https://example.org/x.git"},
        {"https://github.com/org/app.git", "git@host:y.git", "git@host:y.git"},
    };
    // The oracle: git submodule init, in a repository whose origin is the superproject URL.
    ci::test::TempDir dir;
    int n = 0;
    for (const auto& [superproject, url, expected] : cases) {
        CAPTURE(superproject);
        CAPTURE(url);
        CHECK(ci::git::submodule_url(superproject, url) == expected);
        const auto repo = dir / std::to_string(n++);
        std::filesystem::create_directories(repo);
        git(repo, {"init", "-q"});
        git(repo, {"remote", "add", "origin", superproject});
        ci::test::write_file(repo / ".gitmodules",
                             "[submodule \"x\"]\n\tpath = x\n\turl = " + url + "\n");
        git(repo,
            {"update-index",
             "--add",
             "--cacheinfo",
             "160000,1111111111111111111111111111111111111111,x"});
        git(repo, {"submodule", "init", "-q"});
        CHECK(git(repo, {"config", "submodule.x.url"}) ==
              ci::git::submodule_url(superproject, url));
    }
}

TEST_CASE("checkout: submodules, nested, only on request, at the commits the tree records") {
    Origin origin;
    ci::test::TempDir dir;
    const std::map<std::string, std::string> dates{{"GIT_COMMITTER_DATE", "1795510800 +0100"},
                                                   {"GIT_AUTHOR_DATE", "1795510800 +0100"}};
    const auto make_repo = [&](const std::filesystem::path& repo, const std::string& file) {
        std::filesystem::create_directories(repo);
        git(repo, {"init", "-q", "-b", "master"});
        ci::test::write_file(repo / file, file + "\n");
        git(repo, {"add", "-A"});
        git(repo, {"commit", "-q", "-m", file}, dates);
    };
    // Beside the origin, so that "../middle" names it.
    const auto middle = origin.dir / "middle";
    const auto inner = origin.dir / "inner";
    make_repo(inner, "inner.txt");
    make_repo(middle, "middle.txt");
    // The git CLI refuses file:// submodules unless told (CVE-2022-39253); libgit2 has no
    // such rule.
    git(middle,
        {"-c",
         "protocol.file.allow=always",
         "submodule",
         "add",
         "-q",
         "file://" + (inner).string(),
         "deps/inner"});
    git(middle, {"commit", "-q", "-m", "inner as a submodule"}, dates);
    git(origin.repo, {"checkout", "-q", "feature"});
    // A relative URL, as GitHub projects write them: it resolves against the superproject's.
    git(origin.repo,
        {"-c", "protocol.file.allow=always", "submodule", "add", "-q", "../middle", "middle"});
    const std::string feature_tip = origin.commit("middle as a submodule");
    git(origin.repo, {"checkout", "-q", "master"});
    const std::string middle_commit = git(middle, {"rev-parse", "HEAD"});
    const std::string inner_commit = git(inner, {"rev-parse", "HEAD"});
    // Move the submodules' own branches on: the checkout must use the recorded commits.
    ci::test::write_file(middle / "later.txt", "later\n");
    git(middle, {"add", "-A"});
    git(middle, {"commit", "-q", "-m", "later"}, dates);

    auto options = options_for(origin, dir / "cache", "feature");
    auto plain = ci::git::checkout(dir / "plain", options);
    REQUIRE_OK(plain);
    CHECK_FALSE(std::filesystem::exists(dir / "plain" / "middle" / "middle.txt"));

    options.submodules = true;
    // Local submodules (file://, resolved from "../middle" against a file:// origin) are
    // refused unless allowed, as git refuses them (CVE-2022-39253), and nothing is cloned.
    auto refused = ci::git::checkout(dir / "refused", options);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.starts_with("submodule middle (file://" +
                                              (origin.dir / "middle").string() + ") in "));
    CHECK(refused.error().message.find("refused unless the repository allows local submodules") !=
          std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "refused" / ".git" / "modules"));
    CHECK_FALSE(std::filesystem::exists(dir / "refused" / "middle" / "middle.txt"));
    options.allow_local_submodules = true;
    auto with = ci::git::checkout(dir / "work", options);
    REQUIRE_OK(with);
    CHECK(with->merge.branch_tip == feature_tip);
    CHECK(ci::test::read_file(dir / "work" / "middle" / "middle.txt") == "middle.txt\n");
    CHECK(ci::test::read_file(dir / "work" / "middle" / "deps" / "inner" / "inner.txt") ==
          "inner.txt\n");
    CHECK_FALSE(std::filesystem::exists(dir / "work" / "middle" / "later.txt"));
    CHECK(git(dir / "work" / "middle", {"rev-parse", "HEAD"}) == middle_commit);
    CHECK(git(dir / "work" / "middle" / "deps" / "inner", {"rev-parse", "HEAD"}) == inner_commit);
    // Reused: a second checkout with submodules succeeds and leaves them in place.
    auto again = ci::git::checkout(dir / "work", options);
    REQUIRE_OK(again);
    CHECK(std::filesystem::exists(dir / "work" / "middle" / "deps" / "inner" / "inner.txt"));

    // A submodule that cannot be fetched is an error naming it.
    std::filesystem::remove_all(middle);
    auto broken = ci::git::checkout(dir / "fresh", options);
    REQUIRE_FALSE(broken.has_value());
    CHECK(broken.error().message.find("submodule middle") != std::string::npos);
}

TEST_CASE("checkout: a conflict is an outcome, and the work directory is clean") {
    Origin origin;
    git(origin.repo, {"checkout", "-q", "-b", "clash", origin.feature_tip});
    ci::test::write_file(origin.repo / "a.txt", "a3 from clash\n");
    const std::string clash_tip = origin.commit("clash");
    git(origin.repo, {"checkout", "-q", "master"});
    ci::test::TempDir dir;
    auto result = ci::git::checkout(dir / "work", options_for(origin, dir / "cache", "clash"));
    REQUIRE_OK(result);
    CHECK(result->merge.conflicted());
    CHECK(result->merge.conflicts == std::vector<std::string>{"a.txt"});
    CHECK(result->checked_out == clash_tip);
    CHECK(ci::test::read_file(dir / "work" / "a.txt") == "a3 from clash\n");
    CHECK(git(dir / "work", {"status", "--porcelain"}).empty());
}

TEST_CASE("checkout: what is missing is an error naming it") {
    Origin origin;
    ci::test::TempDir dir;
    auto missing = ci::git::checkout(dir / "w", options_for(origin, dir / "cache", "nope"));
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::Git);
    CHECK(missing.error().message.starts_with("branch nope in file://"));
    auto no_target =
        ci::git::checkout(dir / "w", options_for(origin, dir / "cache", "feature", "develop"));
    REQUIRE_FALSE(no_target.has_value());
    CHECK(no_target.error().message.starts_with("merge target develop in "));
    auto no_repo = options_for(origin, dir / "cache", "master");
    no_repo.url = "file://" + (dir / "absent").string();
    auto unreachable = ci::git::checkout(dir / "w", no_repo);
    REQUIRE_FALSE(unreachable.has_value());
    CHECK(unreachable.error().message.starts_with("fetch file://"));
}

TEST_CASE("checkout: a damaged mirror is cloned again") {
    Origin origin;
    ci::test::TempDir dir;
    const auto cache = dir / "cache";
    REQUIRE_OK(ci::git::checkout(dir / "w", options_for(origin, cache, "feature")));
    const auto mirror = ci::git::mirror_path(cache, origin.url());
    REQUIRE(std::filesystem::exists(mirror / "HEAD"));
    // Every object gone, refs pointing at nothing: the kind of damage a full disk leaves.
    std::filesystem::remove_all(mirror / "objects");
    std::filesystem::create_directories(mirror / "objects");
    ci::test::write_file(mirror / "config", "this is not a git config [[[\n");
    auto recovered = ci::git::checkout(dir / "w", options_for(origin, cache, "feature"));
    REQUIRE_OK(recovered);
    CHECK(recovered->merge.branch_tip == origin.feature_tip);
    CHECK(ci::test::read_file(dir / "w" / "b.txt") == "b2 from feature\n");
}

TEST_CASE("checkout: concurrent builds of one repository share its mirror") {
    Origin origin;
    ci::test::TempDir dir;
    std::atomic<int> good{0};
    std::vector<std::string> merges(4);
    std::vector<std::thread> builds;
    builds.reserve(4);
    for (int i = 0; i < 4; ++i) {
        builds.emplace_back([&, i] {
            auto result = ci::git::checkout(dir / ("work" + std::to_string(i)),
                                            options_for(origin, dir / "cache", "feature"));
            if (result && !result->merge.conflicted()) {
                merges[i] = result->merge.merge_commit;
                ++good;
            }
        });
    }
    for (auto& build : builds) {
        build.join();
    }
    CHECK(good == 4);
    CHECK(merges[0] == merges[1]);
    CHECK(merges[1] == merges[2]);
    CHECK(merges[2] == merges[3]);
}

TEST_CASE("checkout: a token is never written to a git config") {
    Origin origin;
    ci::test::TempDir dir;
    auto options = options_for(origin, dir / "cache", "feature");
    options.token = "ghp_never_written_anywhere_0000";
    REQUIRE_OK(ci::git::checkout(dir / "work", options));
    const auto mirror = ci::git::mirror_path(dir / "cache", origin.url());
    CHECK(ci::test::read_file(mirror / "config").find("ghp_") == std::string::npos);
    CHECK(ci::test::read_file(dir / "work" / ".git" / "config").find("ghp_") == std::string::npos);
}

TEST_CASE("checkout: an HTTPS-style token authenticates, and is never written or logged") {
    const char* source_dir = std::getenv("LIBCI_SOURCE_DIR");
    REQUIRE_MESSAGE(source_dir != nullptr, "LIBCI_SOURCE_DIR is unset: run this under meson test");
    const auto server_script =
        std::filesystem::path(source_dir) / "tests" / "support" / "git_http_server.py";
    Origin origin;
    ci::test::TempDir dir;
    const auto served = dir / "served";
    std::filesystem::create_directories(served);
    git(served, {"clone", "-q", "--bare", origin.repo.string(), (served / "app.git").string()});
    const std::string token = "ghp_tokenthatmustnotleak0123456789";
    ci::test::BackgroundProcess server({"python3", server_script.string(), served.string(), token});
    auto ready = server.wait_for_line(std::regex(R"(listening on (127\.0\.0\.1:\d+))"),
                                      std::chrono::seconds(30));
    INFO(server.output());
    REQUIRE(ready.has_value());
    const std::string url = "http://" + std::string((*ready)[1]) + "/app.git";

    std::vector<std::string> logged;
    std::mutex log_mutex;
    ci::log::set_level(ci::log::Level::Trace);
    ci::log::set_sink([&](ci::log::Level, std::string_view line) {
        const std::lock_guard lock(log_mutex);
        logged.emplace_back(line);
    });

    auto options = options_for(origin, dir / "cache", "feature");
    options.url = url;
    auto without = ci::git::checkout(dir / "work", options);
    REQUIRE_FALSE(without.has_value());
    CHECK(without.error().message.find("no token was given") != std::string::npos);

    options.token = "ghp_wrong_token_000000000000000";
    auto wrong = ci::git::checkout(dir / "work", options);
    REQUIRE_FALSE(wrong.has_value());
    CHECK(wrong.error().message.find("ghp_wrong") == std::string::npos);

    options.token = token;
    auto with = ci::git::checkout(dir / "work", options);
    ci::log::set_sink({});
    ci::log::set_level(ci::log::Level::Warn);
    REQUIRE_OK(with);
    CHECK(with->merge.branch_tip == origin.feature_tip);
    CHECK(ci::test::read_file(served / "requests.log").find("x-access-token") != std::string::npos);

    const auto mirror = ci::git::mirror_path(dir / "cache", url);
    for (const auto& file : {mirror / "config", dir / "work" / ".git" / "config"}) {
        CAPTURE(file.string());
        CHECK(ci::test::read_file(file).find(token) == std::string::npos);
    }
    for (const auto& line : logged) {
        CHECK(line.find(token) == std::string::npos);
    }
}

namespace {

// The repository `origin` served by a real `git daemon` (tests/support/git_daemon.py) on a port
// the kernel picked; what the daemon does with the next connection is `mode_file`'s content.
struct ServedOrigin {
    ci::test::TempDir dir{"libci-daemon"};
    std::filesystem::path mode_file = dir / "mode";
    std::optional<ci::test::BackgroundProcess> daemon;
    std::string url;

    explicit ServedOrigin(const Origin& origin) {
        const char* source_dir = std::getenv("LIBCI_SOURCE_DIR");
        REQUIRE_MESSAGE(source_dir != nullptr, "LIBCI_SOURCE_DIR is unset: run under meson test");
        git(dir.path(),
            {"clone", "-q", "--bare", origin.repo.string(), (dir / "app.git").string()});
        daemon.emplace(std::vector<std::string>{
            "python3",
            (std::filesystem::path(source_dir) / "tests" / "support" / "git_daemon.py").string(),
            dir.path().string(),
            mode_file.string()});
        auto ready = daemon->wait_for_line(std::regex(R"(listening on (127\.0\.0\.1:\d+))"),
                                           std::chrono::seconds(30));
        INFO(daemon->output());
        REQUIRE(ready.has_value());
        url = "git://" + std::string((*ready)[1]) + "/app.git";
    }
    void set_mode(const std::string& mode) const { ci::test::write_file(mode_file, mode); }
    // Pushes the origin's branches to the served copy.
    void update(const Origin& origin) const {
        git(origin.repo, {"push", "-q", "-f", (dir / "app.git").string(), "master", "feature"});
    }
};

// The files of `dir` and their inode numbers: what a re-clone would replace.
std::map<std::string, std::uintmax_t> inodes(const std::filesystem::path& dir) {
    std::map<std::string, std::uintmax_t> found;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
        struct stat info {};
        if (::lstat(entry.path().c_str(), &info) == 0 && entry.is_regular_file()) {
            found[std::filesystem::relative(entry.path(), dir).string()] = info.st_ino;
        }
    }
    return found;
}

// A work directory checked out from a new cache: feature merged forward onto master.
struct CheckedOut {
    Origin origin;
    ci::test::TempDir dir;
    std::filesystem::path cache = dir / "cache";
    std::filesystem::path work = dir / "work";
    ci::git::CheckoutOptions options = options_for(origin, cache, "feature");
    std::filesystem::path mirror = ci::git::mirror_path(cache, origin.url());
    ci::git::CheckoutResult first;

    CheckedOut() {
        auto result = ci::git::checkout(work, options);
        REQUIRE_OK(result);
        first = std::move(*result);
    }
};

} // namespace

TEST_CASE("checkout: a server that drops or refuses the connection leaves the mirror alone") {
    Origin origin;
    ServedOrigin served(origin);
    ci::test::TempDir dir;
    const auto cache = dir / "cache";
    const auto work = dir / "work";
    auto options = options_for(origin, cache, "feature");
    options.url = served.url;
    auto first = ci::git::checkout(work, options);
    REQUIRE_OK(first);
    REQUIRE_FALSE(first->merge.merge_commit.empty()); // an object only the mirror holds
    const auto mirror = ci::git::mirror_path(cache, served.url);
    const auto objects = inodes(mirror / "objects");
    REQUIRE_FALSE(objects.empty());

    for (const std::string mode : {"hangup", "refuse"}) {
        CAPTURE(mode);
        if (mode == "refuse") {
            served.daemon->stop();
        } else {
            served.set_mode(mode);
        }
        auto failed = ci::git::checkout(work, options);
        REQUIRE_FALSE(failed.has_value());
        CHECK(failed.error().code == ci::ErrorCode::Git);
        // The error names the remote, and says the mirror was kept.
        CHECK(failed.error().message.starts_with("fetch " + served.url + ": "));
        CHECK(failed.error().message.find("kept") != std::string::npos);
        // Not one object file of the mirror was replaced, and the work directory that borrows
        // them still reads its history.
        CHECK(inodes(mirror / "objects") == objects);
        const auto log = ci::test::run_git(work, {"log", "-1", "--format=%H"});
        CHECK(log.status == 0);
        CHECK(log.out == first->merge.merge_commit);
    }
}

TEST_CASE("checkout: a repository gone from its path keeps the mirror, and it fetches again") {
    CheckedOut checked_out;
    auto& [origin, dir, cache, work, options, mirror, first] = checked_out;
    const auto objects = inodes(mirror / "objects");
    std::filesystem::rename(origin.repo, origin.dir / "moved");
    auto failed = ci::git::checkout(work, options);
    REQUIRE_FALSE(failed.has_value());
    CHECK(failed.error().message.starts_with("fetch " + origin.url() + ": "));
    CHECK(inodes(mirror / "objects") == objects);
    CHECK(ci::test::run_git(work, {"log", "-1", "--format=%H"}).out == first.merge.merge_commit);
    std::filesystem::rename(origin.dir / "moved", origin.repo);
    auto again = ci::git::checkout(work, options);
    REQUIRE_OK(again);
    CHECK(again->merge.merge_commit == first.merge.merge_commit);
}

TEST_CASE("checkout: a mirror missing an object is cloned again; work directories still read") {
    CheckedOut checked_out;
    auto& [origin, dir, cache, work, options, mirror, first] = checked_out;
    // The fetched objects gone (the packs), the merge commit left (libci wrote it loose): what
    // a disk that lost files leaves.
    int packs = 0;
    for (const auto& entry : std::filesystem::directory_iterator(mirror / "objects" / "pack")) {
        std::filesystem::remove(entry.path());
        ++packs;
    }
    REQUIRE(packs > 0);
    REQUIRE(ci::test::run_git(work, {"log", "-1"}).status != 0);
    auto again = ci::git::checkout(work, options);
    REQUIRE_OK(again);
    CHECK(again->merge.merge_commit == first.merge.merge_commit);
    CHECK(ci::test::run_git(mirror, {"fsck", "--no-dangling"}).status == 0);
    // A work directory that borrowed the old mirror's objects, at the merge commit libci made
    // there, reads its whole history from the new one.
    CHECK(ci::test::run_git(work, {"log", "--format=%H"}).status == 0);
    CHECK(ci::test::run_git(work, {"fsck", "--no-dangling"}).status == 0);
    // No temporary directory is left beside the mirror.
    int entries = 0;
    for (const auto& entry : std::filesystem::directory_iterator(cache)) {
        CAPTURE(entry.path().string());
        CHECK((entry.path() == mirror || entry.path().string() == mirror.string() + ".lock"));
        ++entries;
    }
    CHECK(entries == 2);
}

TEST_CASE("checkout: a mirror left half-made (no fetch refspec) is repaired") {
    // What a kill -9 between creating the mirror and configuring its remote used to leave.
    Origin origin;
    ci::test::TempDir dir;
    const auto cache = dir / "cache";
    const auto mirror = ci::git::mirror_path(cache, origin.url());
    std::filesystem::create_directories(cache);
    git(cache, {"init", "-q", "--bare", mirror.string()});
    git(mirror, {"config", "remote.origin.url", origin.url()});
    auto result = ci::git::checkout(dir / "work", options_for(origin, cache, "feature"));
    REQUIRE_OK(result);
    CHECK(result->merge.branch_tip == origin.feature_tip);
    const auto specs = git(mirror, {"config", "--get-all", "remote.origin.fetch"});
    CHECK(specs == "+refs/heads/*:refs/heads/*\n+refs/tags/*:refs/tags/*");

    // A mirror directory with no repository in it at all (killed right after mkdir).
    ci::test::TempDir dir2;
    const auto mirror2 = ci::git::mirror_path(dir2 / "cache", origin.url());
    std::filesystem::create_directories(mirror2 / "objects");
    auto result2 = ci::git::checkout(dir2 / "work", options_for(origin, dir2 / "cache", "feature"));
    REQUIRE_OK(result2);
    CHECK(result2->merge.branch_tip == origin.feature_tip);
}

TEST_CASE("checkout: nothing is written or deleted through a symlink that leads out") {
    Origin origin;
    // A branch that tracks a file under evil/ and under b-dir/evil/, and a branch whose evil is a
    // tracked symlink leading out (checked out as git does: as a link).
    git(origin.repo, {"checkout", "-q", "-b", "pwn", origin.master_tip});
    ci::test::write_file(origin.repo / "evil" / "pwned", "pwned\n");
    ci::test::write_file(origin.repo / "sub" / "evil" / "pwned", "pwned\n");
    origin.commit("evil/pwned");
    git(origin.repo, {"checkout", "-q", "-b", "link", origin.master_tip});
    ci::test::write_file(origin.repo / "sub" / "keep.txt", "keep\n");
    std::filesystem::create_symlink("../../outside", origin.repo / "evil");
    origin.commit("evil as a link out");
    git(origin.repo, {"checkout", "-q", "master"});
    ci::test::write_file(origin.repo / "sub" / "keep.txt", "keep\n");
    origin.commit("sub");

    ci::test::TempDir dir;
    const auto outside = dir / "outside";
    ci::test::write_file(outside / "precious", "mine\n");
    const auto work = dir / "work";
    REQUIRE_OK(ci::git::checkout(work, options_for(origin, dir / "cache", "master", std::nullopt)));
    // Left by a build: links out, at the top and in a tracked directory.
    std::filesystem::create_symlink(outside, work / "evil");
    std::filesystem::create_symlink(outside, work / "sub" / "evil");
    auto pwn = ci::git::checkout(work, options_for(origin, dir / "cache", "pwn", std::nullopt));
    REQUIRE_OK(pwn);
    CHECK_FALSE(std::filesystem::exists(outside / "pwned"));
    CHECK_FALSE(std::filesystem::is_symlink(work / "evil"));
    CHECK(ci::test::read_file(work / "evil" / "pwned") == "pwned\n");
    CHECK(ci::test::read_file(work / "sub" / "evil" / "pwned") == "pwned\n");
    // The next checkout removes evil/pwned: from the work directory, nothing outside.
    std::filesystem::remove_all(work / "evil");
    std::filesystem::create_symlink(outside, work / "evil");
    ci::test::write_file(outside / "pwned", "not the checkout's\n");
    REQUIRE_OK(ci::git::checkout(work, options_for(origin, dir / "cache", "master", std::nullopt)));
    CHECK(ci::test::read_file(outside / "pwned") == "not the checkout's\n");
    CHECK(ci::test::read_file(outside / "precious") == "mine\n");
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(work / "evil")));

    // A tracked link out, then a branch with a file under its name.
    auto link = ci::git::checkout(work, options_for(origin, dir / "cache", "link", std::nullopt));
    REQUIRE_OK(link);
    CHECK(std::filesystem::read_symlink(work / "evil") == "../../outside");
    std::filesystem::remove(outside / "pwned");
    REQUIRE_OK(ci::git::checkout(work, options_for(origin, dir / "cache", "pwn", std::nullopt)));
    CHECK_FALSE(std::filesystem::exists(outside / "pwned"));
    CHECK(ci::test::read_file(work / "evil" / "pwned") == "pwned\n");
    // A tracked link comes back when checked out again.
    REQUIRE_OK(ci::git::checkout(work, options_for(origin, dir / "cache", "link", std::nullopt)));
    CHECK(std::filesystem::read_symlink(work / "evil") == "../../outside");
    REQUIRE_OK(ci::git::checkout(work, options_for(origin, dir / "cache", "link", std::nullopt)));
    CHECK(std::filesystem::read_symlink(work / "evil") == "../../outside");
    CHECK(ci::test::read_file(outside / "precious") == "mine\n");
}

TEST_CASE("checkout: DEST must be absent, empty or a libci checkout") {
    Origin origin;
    ci::test::TempDir dir;
    const auto options = options_for(origin, dir / "cache", "feature");
    // Absent, and empty: checked out.
    REQUIRE_OK(ci::git::checkout(dir / "absent", options));
    std::filesystem::create_directories(dir / "empty");
    REQUIRE_OK(ci::git::checkout(dir / "empty", options));
    // A libci checkout: reused (also one made before libci marked them: a repository that
    // borrows a mirror's objects from the cache).
    REQUIRE_OK(ci::git::checkout(dir / "empty", options));
    std::filesystem::remove(dir / "empty" / ".git" / "libci-checkout");
    REQUIRE_OK(ci::git::checkout(dir / "empty", options));

    // Anything else is an error naming it, and nothing in it changes.
    const auto check_refused = [&](const std::filesystem::path& dest, const std::string& why) {
        CAPTURE(dest.string());
        auto refused = ci::git::checkout(dest, options);
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().message.starts_with(dest.string() + " "));
        CHECK(refused.error().message.find(why) != std::string::npos);
    };
    ci::test::write_file(dir / "files" / "thesis.tex", "years of work\n");
    check_refused(dir / "files", "is not empty and not a libci checkout");
    CHECK(ci::test::read_file(dir / "files" / "thesis.tex") == "years of work\n");

    git(dir.path(), {"clone", "-q", origin.repo.string(), (dir / "clone").string()});
    ci::test::write_file(dir / "clone" / "work-in-progress.txt", "unsaved\n");
    check_refused(dir / "clone", "is not empty and not a libci checkout");
    CHECK(ci::test::read_file(dir / "clone" / "work-in-progress.txt") == "unsaved\n");

    // A directory inside another repository (git would find that one above it).
    ci::test::write_file(dir / "clone" / "nested" / "notes.txt", "notes\n");
    check_refused(dir / "clone" / "nested", "is not empty and not a libci checkout");
    CHECK(ci::test::read_file(dir / "clone" / "nested" / "notes.txt") == "notes\n");

    ci::test::write_file(dir / "file", "a file\n");
    check_refused(dir / "file", "is not a directory");
    CHECK(ci::test::read_file(dir / "file") == "a file\n");

    // A checkout whose .git a build replaced by a link to another repository.
    std::filesystem::remove_all(dir / "absent" / ".git");
    std::filesystem::create_symlink(dir / "clone" / ".git", dir / "absent" / ".git");
    check_refused(dir / "absent", "is not empty and not a libci checkout");
    CHECK(ci::test::read_file(dir / "clone" / "work-in-progress.txt") == "unsaved\n");
}

TEST_CASE("checkout: a worker's own slot whose .git a step deleted is emptied, not refused") {
    Origin origin;
    ci::test::TempDir dir;
    auto options = options_for(origin, dir / "cache", "feature");
    const auto slot = dir / "work" / "builder" / "0";
    REQUIRE_OK(ci::git::checkout(slot, options));
    // What a careless step does: its .git gone, files of its own left, a link out.
    std::filesystem::remove_all(slot / ".git");
    ci::test::write_file(slot / "build" / "output.o", "object\n");
    ci::test::write_file(dir / "outside" / "keep.txt", "keep\n");
    std::filesystem::create_symlink(dir / "outside", slot / "link-out");

    // A directory a user named is still refused, naming it.
    auto refused = ci::git::checkout(slot, options);
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error().message.starts_with(slot.string() + " is not empty and not a libci "
                                                              "checkout"));
    CHECK(std::filesystem::exists(slot / "build" / "output.o"));

    // The worker's own slot: emptied and checked out again; nothing outside it touched.
    options.owned_work_dir = true;
    auto again = ci::git::checkout(slot, options);
    REQUIRE_OK(again);
    CHECK_FALSE(std::filesystem::exists(slot / "build"));
    CHECK_FALSE(std::filesystem::is_symlink(slot / "link-out"));
    CHECK(std::filesystem::is_regular_file(slot / ".git" / "libci-checkout"));
    CHECK(ci::test::read_file(dir / "outside" / "keep.txt") == "keep\n");
    auto head = ci::git::head_commit(slot);
    REQUIRE_OK(head);
    CHECK(*head == again->checked_out);
}
