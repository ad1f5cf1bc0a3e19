// ci-worker: the build agent. It connects out to a master, takes builds, checks out the branch
// merged forward onto its target, and runs the build's steps.

#include <cstdio>

#include <CLI/CLI.hpp>

#include <ci/core/hardening.h>

#include "ci-worker/commands.h"
#include "common/tool.h"

int main(int argc, char** argv) {
    // First, before any thread: the secrets of the environment out of /proc/PID/environ, and
    // the process non-dumpable, so that a build step of the same user cannot read them.
    if (auto protected_ = ci::protect_secrets(); !protected_) {
        std::fprintf(stderr, "warning: %s\n", protected_.error().message.c_str());
    }
    CLI::App app{"ci-worker: the libci build agent. It connects out to a ci-master, runs the\n"
                 "builds it is given, and streams their logs back."};
    ci::tools::setup_common(app, "ci-worker");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    ci::tools::worker::setup_checkout(app, runner);
    ci::tools::worker::setup_run_step(app, runner);
    ci::tools::worker::setup_start(app, runner);
    ci::tools::worker::take_step_command(argc, argv);
    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
