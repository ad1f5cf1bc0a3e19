// `ci-deploy check FILE`

#include <ci/deploy/plan.h>

#include "ci-deploy/commands.h"
#include "common/check_config.h"

namespace ci::tools::deploy {

void setup_check(CLI::App& app, Runner& runner) {
    add_check_config_command(
        app,
        runner,
        "check",
        "Check a deployment's config.yml before deploying it: everything `ci-master\n"
        "check-config` checks, and what start and update need of the deploy section (an\n"
        "image for runtime docker, the default, or podman; a binary for runtime process).",
        /*default_file=*/"config.yml",
        [](const config::Config& config) -> Status {
            if (auto settings = ci::deploy::settings_from(config); !settings) {
                return fail(settings.error());
            }
            return {};
        });
}

} // namespace ci::tools::deploy
