// `ci-deploy status [CONFIG]`

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_status(CLI::App& app, Runner& runner) {
    (void)add_target_command(
        app,
        runner,
        "status",
        "Print whether the master runs, its version (release or image), uptime, health\n"
        "(/healthz), running builds and connected workers (from its API). Exit 0 when it runs\n"
        "and is healthy, 1 when it does not run or is not healthy.",
        TargetFlags{},
        std::make_shared<TargetCommand>(),
        ci::deploy::status);
}

} // namespace ci::tools::deploy
