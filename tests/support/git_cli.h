#pragma once

// The real git CLI, for tests that build repositories and for the merge oracle.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace ci::test {

/// What a git command did.
struct GitRun {
    int status = 0;
    std::string out; ///< standard output, without its final newline
    std::string err;
};

/// Runs `git -C dir args...` with a fixed identity, no system or global config, and `env`
/// added; never fails the test by itself.
GitRun run_git(const std::filesystem::path& dir,
               const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {});

/// Like run_git, but the command must succeed (the test fails otherwise); returns its output.
std::string git(const std::filesystem::path& dir,
                const std::vector<std::string>& args,
                const std::map<std::string, std::string>& env = {});

} // namespace ci::test
