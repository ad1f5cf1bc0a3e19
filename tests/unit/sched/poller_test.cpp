// The git poller against a real repository made with the git CLI.

#include <string>

#include <doctest/doctest.h>

#include <ci/core/process.h>
#include <ci/sched/poller.h>
#include <ci/sched/scheduler.h>

#include "support/git_cli.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::test::git;

TEST_CASE("poller: ls-remote output, annotated tags peeled") {
    const auto refs = ci::sched::parse_ls_remote(
        "aaa\trefs/heads/master\nbbb\trefs/tags/1.0\nccc\trefs/tags/1.0^{}\n"
        "ddd\trefs/pull/1/head\neee\tHEAD\n");
    CHECK(refs == std::map<std::string, std::string>{{"refs/heads/master", "aaa"},
                                                     {"refs/tags/1.0", "ccc"}});
}

TEST_CASE("poller: a real repository's refs, and the events between two readings") {
    ci::test::TempDir dir;
    const auto repo = dir / "repo";
    std::filesystem::create_directories(repo);
    git(repo, {"init", "-q", "-b", "master"});
    git(repo, {"commit", "-q", "--allow-empty", "-m", "one"});
    const std::string first = git(repo, {"rev-parse", "HEAD"});
    auto before = ci::sched::list_remote_refs(repo.string());
    REQUIRE_OK(before);
    CHECK(before->at("refs/heads/master") == first);

    git(repo, {"commit", "-q", "--allow-empty", "-m", "two"});
    git(repo, {"tag", "-a", "-m", "release", "1.0"});
    git(repo, {"branch", "feature/x"});
    const std::string second = git(repo, {"rev-parse", "HEAD"});
    auto after = ci::sched::list_remote_refs(repo.string());
    REQUIRE_OK(after);
    CHECK(after->at("refs/tags/1.0") == second); // the commit, not the tag object

    const auto events = ci::sched::poll_events("app", *before, *after, {});
    REQUIRE(events.size() == 3);
    CHECK(std::get<ci::sched::Push>(events[0]).changes[0].branch == "feature/x");
    CHECK(std::get<ci::sched::Push>(events[1]).changes[0].revision == second);
    CHECK(std::get<ci::sched::Push>(events[2]).changes[0].is_tag);

    auto missing = ci::sched::list_remote_refs((dir / "nowhere").string());
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::Git);
    CHECK(missing.error().message.find("git ls-remote") == 0);
}

TEST_CASE("poller: credentials in the URL never reach the error") {
    auto failed = ci::sched::list_remote_refs("https://user:s3cr3t-token@127.0.0.1:1/r.git",
                                              std::chrono::seconds(20));
    REQUIRE_FALSE(failed.has_value());
    CHECK(failed.error().message.find("s3cr3t-token") == std::string::npos);
}
