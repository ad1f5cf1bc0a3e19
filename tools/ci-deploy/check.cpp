// `ci-deploy check FILE`

#include "ci-deploy/commands.h"
#include "common/check_config.h"

namespace ci::tools::deploy {

void setup_check(CLI::App& app, Runner& runner) {
    add_check_config_command(app,
                             runner,
                             "check",
                             "Check a deployment's config.yml before deploying it.",
                             /*default_file=*/"config.yml");
}

} // namespace ci::tools::deploy
