// `ci-deploy start [CONFIG]`

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_start(CLI::App& app, Runner& runner) {
    (void)add_target_command(
        app,
        runner,
        "start",
        "Install and start a master on the target, then wait until it is healthy.\n"
        "runtime process: installs the supervisor (DATA_DIR/bin/libci-supervise) and\n"
        "deploy.binary as a release (DATA_DIR/releases/ID), then runs it under the supervisor.\n"
        "runtime docker/podman: pulls deploy.image:buildmaster.docker_tag and runs it as the\n"
        "container libci-master with the volume libci-state.\n"
        "The config goes to DATA_DIR/config.json (mode 0600) through ssh's standard input, never\n"
        "on a command line. Refuses when a master runs already (use update or restart).",
        TargetFlags{.waits_for_builds = false, .starts = true},
        std::make_shared<TargetCommand>(),
        ci::deploy::start);
}

} // namespace ci::tools::deploy
