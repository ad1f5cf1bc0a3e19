// `ci-worker run-step [--timeout S] [--grace S] [--cwd DIR] [--env K=V]... -- COMMAND...`

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>

#include <ci/core/process.h>

#include "ci-worker/commands.h"
#include "common/cgroups.h"

namespace ci::tools::worker {

namespace {

struct RunStepOptions {
    std::string timeout = "0";
    std::string grace = "10";
    std::string cwd;
    std::string step_user;
    std::string cgroup = "auto";
    std::vector<std::string> env;
    std::vector<std::string> command;
};

// Writes all of `data` to `fd`; the step's output must not be lost to a short write.
void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n <= 0) {
            return;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

int run_step(const RunStepOptions& options) {
    ProcessSpec spec;
    spec.argv = options.command;
    spec.cwd = options.cwd;
    auto timeout = parse_seconds("--timeout", options.timeout);
    auto grace = parse_seconds("--grace", options.grace);
    for (const auto* parsed : {&timeout, &grace}) {
        if (!*parsed) {
            std::fprintf(stderr, "error: %s\n", parsed->error().message.c_str());
            return ExitUsage;
        }
    }
    spec.timeout = *timeout;
    spec.kill_grace = *grace;
    if (!options.step_user.empty()) {
        auto user = lookup_user(options.step_user);
        if (!user) {
            std::fprintf(stderr, "error: --step-user: %s\n", user.error().message.c_str());
            return ExitUsage;
        }
        spec.run_as = std::move(*user);
    }
    // Quiet: run-step's output is the step's.
    auto cgroups = open_step_cgroups(options.cgroup, true);
    if (!cgroups) {
        print_error(cgroups.error());
        return ExitUsage;
    }
    spec.cgroups = *cgroups;
    for (const auto& assignment : options.env) {
        const auto equals = assignment.find('=');
        spec.env[assignment.substr(0, equals)] = assignment.substr(equals + 1);
    }
    spec.on_output = [](OutputStream stream, std::string_view chunk) {
        write_all(stream == OutputStream::Stdout ? STDOUT_FILENO : STDERR_FILENO, chunk);
    };
    auto result = run_process(spec);
    if (!result) {
        print_error(result.error());
        return 127; // as a shell says for a command it cannot run
    }
    if (!result->success()) {
        std::fprintf(stderr, "ci-worker: step %s\n", result->describe().c_str());
    }
    switch (result->termination) {
    case ProcessResult::Termination::Exited:
        return result->exit_code;
    case ProcessResult::Termination::Signaled:
        return 128 + result->signal;
    case ProcessResult::Termination::TimedOut:
    case ProcessResult::Termination::Inactive:
        return 124; // as coreutils' timeout does
    case ProcessResult::Termination::Cancelled:
        break;
    }
    return 128 + SIGTERM;
}

// What followed "--" on the command line, when run-step was given one.
std::vector<std::string>& separated_command() {
    static std::vector<std::string> command;
    return command;
}

} // namespace

void take_step_command(int& argc, char** argv) {
    bool in_run_step = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg(argv[i]);
        if (arg == "run-step") {
            in_run_step = true;
        } else if (arg == "--" && in_run_step) {
            separated_command().assign(argv + i + 1, argv + argc);
            argc = i;
            return;
        }
    }
}

void setup_run_step(CLI::App& app, Runner& runner) {
    auto options = std::make_shared<RunStepOptions>();
    auto* command = app.add_subcommand(
        "run-step",
        "Run one build step as a worker runs it: COMMAND in its own process group under a\n"
        "supervisor that is a child subreaper, its output streamed here; at the timeout every\n"
        "process of the step gets SIGTERM, then SIGKILL after the grace period, and anything\n"
        "the step leaves running is stopped when it ends, even processes that left its group\n"
        "or session (setsid, set -m); with a cgroup (--cgroup), whatever is left in the step's\n"
        "cgroup is killed too. The step dies with this process (PR_SET_PDEATHSIG).\n"
        "Exit status: the step's own; 124 when it timed out; 128+N when signal N killed it;\n"
        "127 when it could not be started.");
    set_usage(*command, "ci-worker run-step [OPTIONS] [--] COMMAND [ARGS...]");
    command
        ->add_option("--timeout",
                     options->timeout,
                     "Seconds before the step is stopped (a decimal number, 0.001 to 31536000); "
                     "0 means no limit")
        ->default_str("0");
    command
        ->add_option("--grace",
                     options->grace,
                     "Seconds between SIGTERM and SIGKILL when the step is stopped (0, or "
                     "0.001 to 31536000)")
        ->default_str("10");
    command->add_option("--cwd", options->cwd, "Working directory of the step")
        ->check(CLI::ExistingDirectory);
    command->add_option("--step-user",
                        options->step_user,
                        "Run the step as this user (setgid/setuid after fork; ci-worker must "
                        "run as root), with its HOME, USER and LOGNAME");
    add_cgroup_option(*command, options->cgroup);
    command
        ->add_option("--env",
                     options->env,
                     "NAME=VALUE added to the step's environment (repeatable). Secrets belong "
                     "in the worker's own environment, not here: arguments are visible to "
                     "every user of the machine")
        ->check([](const std::string& value) {
            return value.find('=') == std::string::npos || value.front() == '='
                       ? std::string("expected NAME=VALUE")
                       : std::string();
        });
    // Everything from the first argument that is not an option on (or after "--") is the step's
    // command line, its own options included.
    command->prefix_command();
    command->callback([&runner, options, command] {
        options->command = command->remaining();
        if (!separated_command().empty()) {
            if (!options->command.empty()) {
                throw CLI::ExtrasError({options->command.front()});
            }
            options->command = separated_command();
        }
        if (options->command.empty()) {
            throw CLI::RequiredError("COMMAND");
        }
        runner = [options] { return run_step(*options); };
    });
}

} // namespace ci::tools::worker
