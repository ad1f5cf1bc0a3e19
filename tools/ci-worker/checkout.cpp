// `ci-worker checkout URL DEST --branch B [--target auto|none|NAME] [--json]`

#include <array>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/core/log.h>
#include <ci/git/checkout.h>

#include "ci-worker/commands.h"

namespace ci::tools::worker {

namespace {

struct CheckoutCommand {
    std::string url;
    std::string dest;
    std::string branch;
    bool tag = false;
    std::string revision;
    std::string target = "auto";
    std::string default_branch = "master";
    std::string cache;
    bool json = false;
    bool submodules = false;
    bool allow_local_submodules = false;
};

// Exit statuses of this subcommand, as its --help says.
constexpr int exit_clean = 0;
constexpr int exit_conflict = 1;
constexpr int exit_error = 2;

// The --json line: {"branch_tip", "target", "target_tip", "merge", "conflicts"}, null where a
// value does not apply. RapidJSON escapes the strings (branch names and paths may hold quotes,
// backslashes and control characters).
std::string checkout_json(const git::CheckoutResult& result) {
    const auto& merge = result.merge;
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    const auto string = [&writer](std::string_view text) {
        writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
    };
    const auto string_or_null = [&](bool present, std::string_view text) {
        if (present) {
            string(text);
        } else {
            writer.Null();
        }
    };
    const bool has_target = result.target.has_value();
    writer.StartObject();
    writer.Key("branch_tip");
    string(merge.branch_tip);
    writer.Key("target");
    string_or_null(has_target, has_target ? *result.target : std::string_view());
    writer.Key("target_tip");
    string_or_null(has_target && !merge.target_tip.empty(), merge.target_tip);
    writer.Key("merge");
    string_or_null(has_target && !merge.merge_commit.empty(), merge.merge_commit);
    writer.Key("conflicts");
    writer.StartArray();
    for (const auto& path : merge.conflicts) {
        string(path);
    }
    writer.EndArray();
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

int run_checkout(const CheckoutCommand& command) {
    git::CheckoutOptions options;
    options.url = command.url;
    options.branch = command.branch;
    options.is_tag = command.tag;
    if (!command.revision.empty()) {
        options.revision = command.revision;
    }
    if (command.target == "auto") {
        options.target = git::merge_target_for(
            command.branch, command.tag, config::MergeTarget{}, command.default_branch);
    } else if (command.target != "none") {
        options.target = command.target;
    }
    const char* home = std::getenv("HOME");
    options.cache_dir = !command.cache.empty() ? std::filesystem::path(command.cache)
                        : home != nullptr ? std::filesystem::path(home) / ".cache" / "libci" / "git"
                                          : std::filesystem::path("/var/cache/libci/git");
    // Secrets come from the environment, never from arguments.
    if (const char* token = std::getenv("CI_GIT_TOKEN")) {
        options.token = token;
        (void)log::add_secret(options.token);
    }
    if (const char* key = std::getenv("CI_GIT_SSH_KEY")) {
        options.ssh_key = key;
    }
    options.submodules = command.submodules;
    options.allow_local_submodules = command.allow_local_submodules;
    const bool terminal = ::isatty(STDERR_FILENO) != 0 && !command.json;
    if (terminal) {
        options.on_progress = [](const git::Progress& progress) {
            static constexpr std::array<const char*, 3> names = {
                "receiving objects", "indexing objects", "checking out files"};
            std::fprintf(stderr,
                         "\r%s: %llu/%llu   ",
                         names[static_cast<int>(progress.stage)],
                         static_cast<unsigned long long>(progress.current),
                         static_cast<unsigned long long>(progress.total));
        };
    }
    auto result = git::checkout(command.dest, options);
    if (terminal) {
        std::fprintf(stderr, "\r\033[K");
    }
    if (!result) {
        std::fprintf(stderr, "error: %s\n", log::redact(result.error().to_string()).c_str());
        return exit_error;
    }
    const auto& merge = result->merge;
    const bool merged = result->target.has_value() && !merge.merge_commit.empty();
    if (command.json) {
        std::printf("%s\n", checkout_json(*result).c_str());
    } else {
        std::printf("branch %s at %s\n", command.branch.c_str(), merge.branch_tip.c_str());
        if (result->target) {
            std::printf("target %s at %s\n", result->target->c_str(), merge.target_tip.c_str());
        }
        if (merge.conflicted()) {
            std::printf("conflicts (work directory left at the branch tip):\n");
            for (const auto& path : merge.conflicts) {
                std::printf("  %s\n", path.c_str());
            }
        } else if (merged) {
            std::printf("merged forward as %s\n", merge.merge_commit.c_str());
        } else if (result->target) {
            std::printf("already up to date with %s\n", result->target->c_str());
        }
        std::printf("checked out %s in %s\n", result->checked_out.c_str(), command.dest.c_str());
    }
    return merge.conflicted() ? exit_conflict : exit_clean;
}

} // namespace

void setup_checkout(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<CheckoutCommand>();
    auto* sub = app.add_subcommand(
        "checkout",
        "Check out a branch merged forward onto its target, as a build does: the repository is\n"
        "mirrored (and fetched incrementally) under --cache, the branch tip is merged with its\n"
        "target ('Merge forward.', libci <ci@localhost>, the tip's committer date), and the\n"
        "result is checked out in DEST, which is cleaned of untracked and ignored files and of\n"
        "symbolic links the tree does not hold. DEST must be absent, empty, or a checkout made\n"
        "by libci (.git/libci-checkout); any other DEST is refused, untouched.\n"
        "Secrets come from the environment: CI_GIT_TOKEN (HTTPS token), CI_GIT_SSH_KEY (key\n"
        "file; otherwise the SSH agent). An SSH server's host key must be in\n"
        "~/.ssh/known_hosts.\n"
        "Exit status: 0 checked out (merged or not), 1 the merge conflicts (DEST holds the branch\n"
        "tip), 2 an error.");
    sub->add_option("URL", command->url, "The repository, as git clone takes it")->required();
    sub->add_option(
           "DEST", command->dest, "The work directory: absent, empty, or a libci checkout (reused)")
        ->required();
    sub->add_option("--branch,-b", command->branch, "The branch (or tag, with --tag) to build")
        ->required();
    sub->add_flag("--tag", command->tag, "BRANCH names a tag");
    sub->add_flag("--submodules",
                  command->submodules,
                  "Also check out submodules, recursively, at the commits the tree records");
    sub->add_flag("--allow-local-submodules",
                  command->allow_local_submodules,
                  "With --submodules: also submodules whose URL is a local path or file:// "
                  "(refused by default, as git refuses them: CVE-2022-39253)");
    sub->add_option("--revision", command->revision, "Build this commit instead of the tip");
    sub->add_option("--target",
                    command->target,
                    "auto: the default rules (master, release/* and version tags as pushed; "
                    "release-maintenance/X/... onto release/X; others onto master); none; or a "
                    "branch to merge")
        ->default_str("auto");
    sub->add_option(
           "--default-branch", command->default_branch, "The branch 'auto' merges others onto")
        ->default_str("master");
    sub->add_option("--cache", command->cache, "Where mirrors live (default: ~/.cache/libci/git)");
    sub->add_flag("--json",
                  command->json,
                  R"(Print {"branch_tip", "target", "target_tip", "merge", "conflicts"})");
    sub->callback([&runner, command] { runner = [command] { return run_checkout(*command); }; });
}

} // namespace ci::tools::worker
