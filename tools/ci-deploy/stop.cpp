// `ci-deploy stop [CONFIG]`

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_stop(CLI::App& app, Runner& runner) {
    (void)add_target_command(
        app,
        runner,
        "stop",
        "Drain the master (it starts no new build), then stop it once its running builds\n"
        "ended (--timeout, --force): SIGTERM, which\n"
        "gives builds still running the master's shutdown grace, then kill after 30 s more.\n"
        "Exit 0 also when no master runs.",
        TargetFlags{.waits_for_builds = true, .starts = false},
        std::make_shared<TargetCommand>(),
        ci::deploy::stop);
}

} // namespace ci::tools::deploy
