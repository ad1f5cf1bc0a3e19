// `ci-deploy update [CONFIG]`

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_update(CLI::App& app, Runner& runner) {
    (void)add_target_command(
        app,
        runner,
        "update",
        "Update the master to deploy.binary (process) or a fresh pull of deploy.image:\n"
        "buildmaster.docker_tag (docker/podman), as the runbook did by hand:\n"
        " 1. install the new binary (it must run `--version` on the target) or pull the image;\n"
        " 2. drain the running master (POST /api/v1/master/drain with the config's auth: it\n"
        "    starts no new build), ask its API for running builds and wait until they end,\n"
        "    counting down (--timeout; refused with exit 1 when they still run, the master\n"
        "    undrained; --force skips the wait);\n"
        "    then write the config (DATA_DIR/config.json, mode 0600);\n"
        " 3. announce on Zulip (stream zulip.ops_stream, else zulip.stream; only with a zulip\n"
        "    section), with the old and new versions;\n"
        " 4. stop the master, start the new one, wait for /healthz (--health-timeout);\n"
        " 5. healthy: announce it, remove older releases or untagged images (exit 0);\n"
        "    not healthy: print its last log lines, go back to the previous binary or image,\n"
        "    announce the rollback (exit 2).",
        TargetFlags{.waits_for_builds = true, .starts = true},
        std::make_shared<TargetCommand>(),
        ci::deploy::update);
}

} // namespace ci::tools::deploy
