#pragma once

// What every tool shares: the --version text, the error printout and exit codes.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace CLI {
class App;
}

namespace ci::tools {

/// Exit codes shared by every tool. Tools with outcomes of their own (a merge conflict) document
/// extra codes in their --help.
enum ExitCode : int {
    ExitOk = 0,
    ExitFailure = 1, ///< The command ran and found a problem (an invalid config, a failed build).
    ExitUsage = 2,   ///< The command line was wrong (CLI11 uses this too).
    ExitError = 3,   ///< The command could not run (I/O, network, internal error).
};

/// The action of the subcommand that was selected on the command line. Each subcommand's
/// `setup_x(CLI::App&, Runner&)` adds the subcommand and, from its parse callback, sets the runner
/// to call `run_x(options)`; main() calls it after parsing (CLI11's subcom_in_files pattern).
using Runner = std::function<int()>;

/// "ci-master 0.1.0 (libci 0.1.0; libcurl 7.88.1, OpenSSL 3.0.x, libgit2 1.5.1)".
[[nodiscard]] std::string version_text(std::string_view tool);

/// Adds --version (with version_text) and the common --log-level option to `app`, and the help
/// formatter set_usage() needs (call it before adding subcommands: they share it).
void setup_common(CLI::App& app, std::string_view tool);

/// The usage line of `command`'s --help: "Usage: " and `usage` (e.g. "ci-worker run-step
/// [OPTIONS] [--] COMMAND [ARGS...]"), instead of the one CLI11 makes from its options.
void set_usage(CLI::App& command, std::string usage);

/// Parses the command line. Returns nullopt when the tool should go on, or the exit status when
/// it should stop: 0 after --help or --version, ExitUsage after a usage error (CLI11 prints the
/// message).
[[nodiscard]] std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv);

/// Prints "error: <message> [<code>]" to standard error, as libgit2's examples do.
void print_error(const Error& error);

/// Initialises libci (curl, libgit2); prints the error and returns false if that fails.
[[nodiscard]] bool initialize_library();

} // namespace ci::tools
