#pragma once

// A repository for checkout and build tests, made with the real git CLI: master (a.txt, b.txt,
// .gitignore) and a branch `feature` that changes b.txt; master then moves on and changes a.txt,
// so feature merges forward onto master without conflict.

#include <filesystem>
#include <map>
#include <string>

#include "support/git_cli.h"
#include "support/temp_dir.h"

namespace ci::test {

struct Origin {
    TempDir dir{"libci-origin"};
    std::filesystem::path repo = dir / "origin";
    std::string feature_tip;
    std::string master_tip;
    /// Added to every commit's environment (fixed dates make commit ids reproducible).
    std::map<std::string, std::string> commit_env{{"GIT_COMMITTER_DATE", "1795510800 +0100"},
                                                  {"GIT_AUTHOR_DATE", "1795510800 +0100"}};

    Origin() {
        std::filesystem::create_directories(repo);
        git(repo, {"init", "-q", "-b", "master"});
        write_file(repo / "a.txt", "a1\n");
        write_file(repo / "b.txt", "b1\n");
        write_file(repo / ".gitignore", "*.log\n");
        commit("base");
        git(repo, {"checkout", "-q", "-b", "feature"});
        write_file(repo / "b.txt", "b2 from feature\n");
        feature_tip = commit("feature work");
        git(repo, {"checkout", "-q", "master"});
        write_file(repo / "a.txt", "a2 from master\n");
        master_tip = commit("master work");
    }

    /// Commits everything in the work tree of the current branch; returns the commit id.
    std::string commit(const std::string& message) {
        git(repo, {"add", "-A"});
        git(repo, {"commit", "-q", "-m", message}, commit_env);
        return git(repo, {"rev-parse", "HEAD"});
    }

    [[nodiscard]] std::string url() const { return "file://" + repo.string(); }
};

} // namespace ci::test
