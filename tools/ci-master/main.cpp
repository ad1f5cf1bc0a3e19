// ci-master: runs the CI master. One file per subcommand; this one only assembles them.

#include <cstdio>

#include <CLI/CLI.hpp>

#include <ci/core/hardening.h>

#include "ci-master/commands.h"
#include "common/tool.h"

int main(int argc, char** argv) {
    // First, before any thread: the secrets of the environment out of /proc/PID/environ, and
    // the process non-dumpable, so that a build step of the same user cannot read them.
    if (auto protected_ = ci::protect_secrets(); !protected_) {
        std::fprintf(stderr, "warning: %s\n", protected_.error().message.c_str());
    }
    CLI::App app{"ci-master: the libci build master. It watches repositories, schedules builds\n"
                 "and hands them to workers. Configuration: one YAML file (see docs/config.md)."};
    ci::tools::setup_common(app, "ci-master");
    app.require_subcommand(1);
    ci::tools::Runner runner;
    ci::tools::master::setup_check_config(app, runner);
    ci::tools::master::setup_start(app, runner);
    ci::tools::master::setup_fingerprint(app, runner);
    ci::tools::master::setup_render_user_data(app, runner);
    ci::tools::master::setup_hash_password(app, runner);
    if (auto status = ci::tools::parse_command_line(app, argc, argv)) {
        return *status;
    }
    if (!ci::tools::initialize_library()) {
        return ci::tools::ExitError;
    }
    return runner ? runner() : ci::tools::ExitUsage;
}
