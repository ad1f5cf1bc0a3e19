#include "support/git_cli.h"

#include <doctest/doctest.h>

#include <ci/core/process.h>

namespace ci::test {

GitRun run_git(const std::filesystem::path& dir,
               const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env) {
    ProcessSpec spec;
    spec.argv = {"git", "-C", dir.string()};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {{"GIT_AUTHOR_NAME", "Test"},
                {"GIT_AUTHOR_EMAIL", "test@example.org"},
                {"GIT_COMMITTER_NAME", "Test"},
                {"GIT_COMMITTER_EMAIL", "test@example.org"},
                {"GIT_CONFIG_NOSYSTEM", "1"},
                {"GIT_CONFIG_GLOBAL", "/dev/null"},
                {"LC_ALL", "C"}};
    for (const auto& [name, value] : env) {
        spec.env[name] = value;
    }
    GitRun run;
    spec.on_output = [&](OutputStream stream, std::string_view chunk) {
        (stream == OutputStream::Stdout ? run.out : run.err).append(chunk);
    };
    auto result = run_process(spec);
    if (!result) {
        run.status = -1;
        run.err = result.error().message;
        return run;
    }
    run.status = result->success() ? 0 : (result->exit_code != 0 ? result->exit_code : 128);
    while (!run.out.empty() && run.out.back() == '\n') {
        run.out.pop_back();
    }
    return run;
}

std::string git(const std::filesystem::path& dir,
                const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env) {
    const GitRun run = run_git(dir, args, env);
    std::string command = "git";
    for (const auto& arg : args) {
        command += " " + arg;
    }
    INFO(command, ": ", run.err);
    REQUIRE(run.status == 0);
    return run.out;
}

} // namespace ci::test
