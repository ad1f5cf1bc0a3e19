// ci-deploy: deploys, updates and inspects a libci master described by a config.yml.

#include <CLI/CLI.hpp>

#include "ci-deploy/commands.h"
#include "common/tool.h"

int main(int argc, char** argv) {
    CLI::App app{"ci-deploy: deploys and updates a libci master from its config.yml (the deploy\n"
                 "section says where and how: docs/config.md). CONFIG defaults to config.yml;\n"
                 "staging is `ci-deploy update staging.yml`."};
    ci::tools::setup_common(app, "ci-deploy");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    ci::tools::deploy::setup_check(app, runner);
    ci::tools::deploy::setup_start(app, runner);
    ci::tools::deploy::setup_update(app, runner);
    ci::tools::deploy::setup_restart(app, runner);
    ci::tools::deploy::setup_stop(app, runner);
    ci::tools::deploy::setup_status(app, runner);
    ci::tools::deploy::setup_logs(app, runner);
    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
