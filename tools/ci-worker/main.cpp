// ci-worker: the build agent. It connects out to a master, takes builds, checks out the branch
// merged forward onto its target, and runs the build's steps.

#include <CLI/CLI.hpp>

#include "common/tool.h"

int main(int argc, char** argv) {
    CLI::App app{"ci-worker: the libci build agent. It connects out to a ci-master, runs the\n"
                 "builds it is given, and streams their logs back."};
    ci::tools::setup_common(app, "ci-worker");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    CLI11_PARSE(app, argc, argv);
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
