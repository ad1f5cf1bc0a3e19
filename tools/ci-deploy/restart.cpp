// `ci-deploy restart [CONFIG]`

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_restart(CLI::App& app, Runner& runner) {
    (void)add_target_command(
        app,
        runner,
        "restart",
        "Write the config again and restart the installed master (the same binary or image),\n"
        "once running builds ended (drained first: no new build starts; --timeout, --force),\n"
        "then wait until it is healthy.",
        TargetFlags{.waits_for_builds = true, .starts = true},
        std::make_shared<TargetCommand>(),
        ci::deploy::restart);
}

} // namespace ci::tools::deploy
