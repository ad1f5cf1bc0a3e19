// Merge-forward against its oracle, the git CLI: over generated histories (clean merges,
// fast-forwardable branches, conflicts, renames, deletions, binary files, mode changes, empty
// commits, and hand-made ones where a rename meets a modification, a deletion, another rename or
// an addition), our merge commit id equals `git merge --no-ff --no-stat -m "Merge forward."`'s,
// or both report a conflict on the same paths (`git diff --name-only --diff-filter=U`).

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/git/merge.h>

#include "support/git_cli.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using ci::test::git;
using ci::test::run_git;

std::string lines(int count, const std::string& prefix) {
    std::string out;
    for (int i = 0; i < count; ++i) {
        out += prefix + " line " + std::to_string(i) + "\n";
    }
    return out;
}

// Makes commits with varied dates and time zones, as real histories have.
class History {
public:
    History(std::filesystem::path repo, unsigned seed) : repo_(std::move(repo)), random_(seed) {}

    std::string commit(const std::string& message, bool allow_empty = false) {
        clock_ += 3600 + static_cast<long>(random_() % 7200);
        static const std::vector<std::string> zones = {
            "+0000", "+0100", "-0500", "+0530", "-0800", "+1245"};
        const std::string date = std::to_string(clock_) + " " + zones[random_() % zones.size()];
        git(repo_, {"add", "-A"});
        std::vector<std::string> args = {"commit", "-q", "-m", message};
        if (allow_empty) {
            args.emplace_back("--allow-empty");
        }
        git(repo_, args, {{"GIT_AUTHOR_DATE", date}, {"GIT_COMMITTER_DATE", date}});
        return git(repo_, {"rev-parse", "HEAD"});
    }

    void write(const std::string& name, const std::string& content) {
        ci::test::write_file(repo_ / name, content);
    }

    // One random change to the work tree; `side` keeps the two branches' edits apart or not.
    void random_change(const std::string& side) {
        std::vector<std::string> files;
        for (const auto& entry : std::filesystem::directory_iterator(repo_)) {
            if (entry.is_regular_file()) {
                files.push_back(entry.path().filename().string());
            }
        }
        std::ranges::sort(files);
        const std::string file = files.empty() ? "" : files[random_() % files.size()];
        switch (random_() % 8) {
        case 0: // edit one line: other lines of the same file merge cleanly, the same line clashes
        case 1: {
            if (file.empty() || file.ends_with(".bin")) {
                break;
            }
            std::string content = ci::test::read_file(repo_ / file);
            std::vector<std::string> text;
            std::istringstream in(content);
            for (std::string line; std::getline(in, line);) {
                text.push_back(line);
            }
            if (text.empty()) {
                break;
            }
            text[random_() % text.size()] = side + " edit " + std::to_string(random_() % 1000);
            std::string out;
            for (const auto& line : text) {
                out += line + "\n";
            }
            write(file, out);
            break;
        }
        case 2:
            write(side + "-new-" + std::to_string(random_() % 100) + ".txt", lines(5, side));
            break;
        case 3:
            if (!file.empty()) {
                std::filesystem::remove(repo_ / file);
            }
            break;
        case 4:
            if (!file.empty()) {
                std::filesystem::rename(repo_ / file, repo_ / ("renamed-" + side + "-" + file));
            }
            break;
        case 5: {
            std::string binary(64, '\0');
            for (auto& byte : binary) {
                byte = static_cast<char>(random_() % 256);
            }
            write("data.bin", binary);
            break;
        }
        case 6:
            if (!file.empty()) {
                std::filesystem::permissions(repo_ / file,
                                             std::filesystem::perms::owner_exec,
                                             std::filesystem::perm_options::add);
            }
            break;
        default:
            break; // an empty commit
        }
    }

private:
    std::filesystem::path repo_;
    std::mt19937 random_;
    long clock_ = 1700000000;
};

struct OracleAnswer {
    std::string result; // HEAD after the merge (the branch tip when already up to date)
    std::vector<std::string> conflicts;
};

OracleAnswer git_merge(const std::filesystem::path& repo,
                       const std::string& branch_tip,
                       const std::string& target_tip) {
    git(repo, {"checkout", "-q", "--detach", branch_tip});
    const std::string date = git(repo, {"log", "-1", "--format=%cd", "--date=raw", branch_tip});
    const auto merged =
        run_git(repo,
                {"merge", "--no-ff", "--no-stat", "-m", "Merge forward.", target_tip},
                {{"GIT_AUTHOR_NAME", "libci"},
                 {"GIT_AUTHOR_EMAIL", "ci@localhost"},
                 {"GIT_COMMITTER_NAME", "libci"},
                 {"GIT_COMMITTER_EMAIL", "ci@localhost"},
                 {"GIT_AUTHOR_DATE", date},
                 {"GIT_COMMITTER_DATE", date}});
    OracleAnswer answer;
    if (merged.status == 0) {
        answer.result = git(repo, {"rev-parse", "HEAD"});
        return answer;
    }
    const std::string unmerged = git(repo, {"diff", "--name-only", "--diff-filter=U"});
    std::istringstream in(unmerged);
    for (std::string path; std::getline(in, path);) {
        answer.conflicts.push_back(path);
    }
    git(repo, {"merge", "--abort"});
    return answer;
}

} // namespace

TEST_CASE("git: merge targets by the default rules") {
    const ci::config::MergeTarget automatic;
    const auto target = [&](std::string_view branch, bool tag = false) {
        return ci::git::merge_target_for(branch, tag, automatic);
    };
    CHECK(target("master") == std::nullopt);
    CHECK(target("release/1.2") == std::nullopt);
    // The old deployment's release rule (config::is_release_tag, its cases in config_test): a
    // branch named like a release is built as pushed, anything else is merged forward.
    for (const char* version : {"1.2.3", "1.2.3.dev1", "0.3.2.post11"}) {
        CAPTURE(version);
        CHECK(target(version) == std::nullopt);
    }
    for (const char* other : {"1.2", "v1.2.3", "0.3.2+1.gf661a6a"}) {
        CAPTURE(other);
        CHECK(target(other) == "master");
    }
    CHECK(target("anything", true) == std::nullopt);
    CHECK(target("release-maintenance/1.2/fix-x") == "release/1.2");
    CHECK(target("feature/x") == "master");
    CHECK(target("1.2.x") == "master");
    const ci::config::MergeTarget none{ci::config::MergeTarget::Mode::None, {}};
    CHECK(ci::git::merge_target_for("feature/x", false, none) == std::nullopt);
    const ci::config::MergeTarget develop{ci::config::MergeTarget::Mode::Branch, "develop"};
    CHECK(ci::git::merge_target_for("feature/x", false, develop) == "develop");
    CHECK(ci::git::merge_target_for("develop", false, develop) == std::nullopt);
}

TEST_CASE("git: merge-forward gives git's merge commit, or git's conflicts, over many histories") {
    int merges = 0;
    int conflicts = 0;
    int up_to_date = 0;
    for (unsigned seed = 1; seed <= 120; ++seed) {
        CAPTURE(seed);
        ci::test::TempDir dir;
        const auto repo = dir / "repo";
        std::filesystem::create_directories(repo);
        git(repo, {"init", "-q", "-b", "master"});
        History history(repo, seed);
        for (int f = 0; f < 4; ++f) {
            history.write("file" + std::to_string(f) + ".txt",
                          lines(8, "base" + std::to_string(f)));
        }
        const std::string base = history.commit("base");
        std::mt19937 random(std::mt19937::result_type{seed} * 7919);
        // The target moves on master; the branch starts from base, or from a later master.
        git(repo, {"checkout", "-q", "-b", "topic"});
        const int branch_commits = static_cast<int>(random() % 4);
        for (int i = 0; i < branch_commits; ++i) {
            history.random_change("topic");
            history.commit("topic " + std::to_string(i), true);
        }
        const std::string branch_tip = git(repo, {"rev-parse", "HEAD"});
        git(repo, {"checkout", "-q", "master"});
        const int target_commits = static_cast<int>(random() % 4);
        for (int i = 0; i < target_commits; ++i) {
            history.random_change("master");
            history.commit("master " + std::to_string(i), true);
        }
        const std::string target_tip = git(repo, {"rev-parse", "HEAD"});
        (void)base;

        auto ours = ci::git::merge_forward(repo, branch_tip, target_tip);
        REQUIRE_OK(ours);
        const auto oracle = git_merge(repo, branch_tip, target_tip);
        if (!oracle.conflicts.empty()) {
            ++conflicts;
            CHECK(ours->conflicted());
            std::string ours_text;
            std::string git_text;
            for (const auto& path : ours->conflicts) {
                ours_text += path + " ";
            }
            for (const auto& path : oracle.conflicts) {
                git_text += path + " ";
            }
            INFO("ours: ", ours_text, " git: ", git_text);
            CHECK(ours->conflicts == oracle.conflicts);
            continue;
        }
        REQUIRE_FALSE(ours->conflicted());
        CHECK(ours->branch_tip == branch_tip);
        CHECK(ours->target_tip == target_tip);
        CHECK(ours->result() == oracle.result);
        if (ours->merge_commit.empty()) {
            ++up_to_date;
        } else {
            ++merges;
            // The same inputs, the same commit.
            auto again = ci::git::merge_forward(repo, branch_tip, target_tip);
            REQUIRE_OK(again);
            CHECK(again->merge_commit == ours->merge_commit);
        }
    }
    MESSAGE(merges << " merges, " << conflicts << " conflicts, " << up_to_date
                   << " already up to date");
    CHECK(merges > 5);
}

namespace {

// Ten numbered lines, so that a renamed file with one line changed is still a rename.
std::string ten_lines(const std::string& name) {
    return lines(10, name);
}

// `content` with line `number` (from 0) replaced by `text`.
std::string with_line(const std::string& content, int number, const std::string& text) {
    std::istringstream in(content);
    std::string out;
    int index = 0;
    for (std::string line; std::getline(in, line); ++index) {
        out += (index == number ? text : line) + "\n";
    }
    return out;
}

// One side of a hand-made history: edits made with the git CLI in `repo`.
struct Side {
    std::filesystem::path repo;
    void write(const std::string& path, const std::string& content) const {
        ci::test::write_file(repo / path, content);
    }
    void edit(const std::string& path, int line, const std::string& text) const {
        write(path, with_line(ci::test::read_file(repo / path), line, text));
    }
    void move(const std::string& from, const std::string& to) const {
        if (const auto parent = (repo / to).parent_path(); !parent.empty()) {
            std::filesystem::create_directories(parent);
        }
        git(repo, {"mv", from, to});
    }
    void remove(const std::string& path) const { git(repo, {"rm", "-q", path}); }
};

// A history: a base commit with `base` files, a branch and a target that each change it.
struct Scenario {
    std::string name;
    std::vector<std::pair<std::string, std::string>> base; // path, content
    std::function<void(const Side&)> branch;
    std::function<void(const Side&)> target;
};

struct Tips {
    std::string branch;
    std::string target;
};

Tips make_history(const std::filesystem::path& repo, const Scenario& scenario) {
    std::filesystem::create_directories(repo);
    git(repo, {"init", "-q", "-b", "master"});
    const std::map<std::string, std::string> dates{{"GIT_AUTHOR_DATE", "1700000000 +0100"},
                                                   {"GIT_COMMITTER_DATE", "1700000000 +0100"}};
    const Side side{repo};
    for (const auto& [path, content] : scenario.base) {
        side.write(path, content);
    }
    git(repo, {"add", "-A"});
    git(repo, {"commit", "-q", "-m", "base"}, dates);
    git(repo, {"checkout", "-q", "-b", "topic"});
    scenario.branch(side);
    git(repo, {"add", "-A"});
    git(repo, {"commit", "-q", "-m", "topic"}, dates);
    Tips tips;
    tips.branch = git(repo, {"rev-parse", "HEAD"});
    git(repo, {"checkout", "-q", "master"});
    scenario.target(side);
    git(repo, {"add", "-A"});
    git(repo, {"commit", "-q", "-m", "master"}, dates);
    tips.target = git(repo, {"rev-parse", "HEAD"});
    return tips;
}

std::string joined(const std::vector<std::string>& paths) {
    std::string out;
    for (const auto& path : paths) {
        out += (out.empty() ? "" : " ") + path;
    }
    return out.empty() ? "(none)" : out;
}

// The histories where git's list of unmerged paths is easy to get wrong: renames meeting
// modifications, deletions, other renames and additions, on either side.
std::vector<Scenario> rename_scenarios() {
    using S = const Side&;
    const auto f = ten_lines("f");
    const auto e = ten_lines("e");
    std::vector<Scenario> all = {
        {"modify/modify",
         {{"f.txt", f}},
         [](S s) { s.edit("f.txt", 3, "branch"); },
         [](S s) { s.edit("f.txt", 3, "target"); }},
        {"modify/delete",
         {{"f.txt", f}},
         [](S s) { s.edit("f.txt", 3, "branch"); },
         [](S s) { s.remove("f.txt"); }},
        {"delete/modify",
         {{"f.txt", f}},
         [](S s) { s.remove("f.txt"); },
         [](S s) { s.edit("f.txt", 3, "target"); }},
        {"add/add",
         {{"f.txt", f}},
         [](S s) { s.write("g.txt", "branch\n"); },
         [](S s) { s.write("g.txt", "target\n"); }},
        {"rename/modify, clean",
         {{"f.txt", f}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.edit("f.txt", 3, "target"); }},
        {"rename/modify, the branch renames",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "branch");
         },
         [](S s) { s.edit("f.txt", 3, "target"); }},
        {"modify/rename, the target renames",
         {{"f.txt", f}},
         [](S s) { s.edit("f.txt", 3, "branch"); },
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "target");
         }},
        {"rename/modify into a directory",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "sub/g.txt");
             s.edit("sub/g.txt", 3, "branch");
         },
         [](S s) { s.edit("f.txt", 3, "target"); }},
        {"rename/delete",
         {{"f.txt", f}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.remove("f.txt"); }},
        {"delete/rename",
         {{"f.txt", f}},
         [](S s) { s.remove("f.txt"); },
         [](S s) { s.move("f.txt", "g.txt"); }},
        {"rename and modify/delete",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "branch");
         },
         [](S s) { s.remove("f.txt"); }},
        {"rename/rename to two names",
         {{"f.txt", f}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.move("f.txt", "h.txt"); }},
        {"rename/rename to two names, both modified",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "branch");
         },
         [](S s) {
             s.move("f.txt", "h.txt");
             s.edit("h.txt", 3, "target");
         }},
        {"rename/rename to one name, clean",
         {{"f.txt", f}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.move("f.txt", "g.txt"); }},
        {"rename/rename to one name, modified",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "branch");
         },
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "target");
         }},
        {"two files renamed to one name",
         {{"f.txt", f}, {"e.txt", e}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.move("e.txt", "g.txt"); }},
        {"rename/add",
         {{"f.txt", f}},
         [](S s) { s.move("f.txt", "g.txt"); },
         [](S s) { s.write("g.txt", "added by the target\n"); }},
        {"add/rename",
         {{"f.txt", f}},
         [](S s) { s.write("g.txt", "added by the branch\n"); },
         [](S s) { s.move("f.txt", "g.txt"); }},
        {"rename/modify and add at the old name",
         {{"f.txt", f}},
         [](S s) {
             s.move("f.txt", "g.txt");
             s.edit("g.txt", 3, "branch");
             s.write("f.txt", "a new f\n");
         },
         [](S s) { s.edit("f.txt", 3, "target"); }},
    };
    return all;
}

} // namespace

TEST_CASE("git: conflicted paths are git's when renames meet other changes") {
    int clean = 0;
    int conflicted = 0;
    for (const auto& scenario : rename_scenarios()) {
        CAPTURE(scenario.name);
        ci::test::TempDir dir;
        const auto repo = dir / "repo";
        const auto tips = make_history(repo, scenario);
        fprintf(stderr, "=== %s\n", scenario.name.c_str());
        auto ours = ci::git::merge_forward(repo, tips.branch, tips.target);
        REQUIRE_OK(ours);
        const auto oracle = git_merge(repo, tips.branch, tips.target);
        INFO("ours: ", joined(ours->conflicts), "; git: ", joined(oracle.conflicts));
        CHECK(ours->conflicts == oracle.conflicts);
        if (oracle.conflicts.empty()) {
            CHECK(ours->result() == oracle.result);
        }
        ++(oracle.conflicts.empty() ? clean : conflicted);
    }
    // The histories do what their names say: most conflict, a few merge cleanly.
    CHECK(clean == 2);
    CHECK(conflicted == static_cast<int>(rename_scenarios().size()) - 2);
}

TEST_CASE("git: bad inputs are errors naming what failed") {
    ci::test::TempDir dir;
    auto missing = ci::git::merge_forward(dir / "nope", "a", "b");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == ci::ErrorCode::Git);
    CHECK(missing.error().message.starts_with("open repository "));

    const auto repo = dir / "repo";
    std::filesystem::create_directories(repo);
    git(repo, {"init", "-q"});
    git(repo, {"commit", "-q", "--allow-empty", "-m", "one"});
    const std::string head = git(repo, {"rev-parse", "HEAD"});
    auto bad = ci::git::merge_forward(repo, head, "0123456789012345678901234567890123456789");
    REQUIRE_FALSE(bad.has_value());
    CHECK(bad.error().message.starts_with("read target tip commit 0123456789"));
}
