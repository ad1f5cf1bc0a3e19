// ci-deploy: checks a config.yml before it is deployed (deploying and updating a master: not
// built yet).

#include <CLI/CLI.hpp>

#include "ci-deploy/commands.h"
#include "common/tool.h"

int main(int argc, char** argv) {
    CLI::App app{"ci-deploy: checks a libci master's config.yml before it is deployed (deploying "
                 "and updating a master are not built yet)."};
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
