// ci-deploy: deploys and updates a master from config.yml.

#include <CLI/CLI.hpp>

#include "ci-deploy/commands.h"
#include "common/tool.h"

int main(int argc, char** argv) {
    CLI::App app{"ci-deploy: deploys and updates a libci master from its config.yml."};
    ci::tools::setup_common(app, "ci-deploy");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    ci::tools::deploy::setup_check(app, runner);
    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
