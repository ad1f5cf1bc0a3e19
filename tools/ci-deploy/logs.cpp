// `ci-deploy logs [--follow] [CONFIG]`

#include <CLI/CLI.hpp>

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"

namespace ci::tools::deploy {

void setup_logs(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<TargetCommand>();
    auto* sub = add_target_command(
        app,
        runner,
        "logs",
        "Print the master's last log lines (process: DATA_DIR/log/master.log, with the\n"
        "supervisor's notes; docker/podman: the container's log). --follow goes on printing\n"
        "new lines until interrupted (Ctrl-C).",
        TargetFlags{},
        command,
        ci::deploy::logs);
    sub->add_flag("--follow,-f", command->options.follow, "Keep printing new lines");
    sub->add_option("--lines,-n", command->options.log_lines, "How many lines to print first")
        ->default_str("100")
        ->check(CLI::Range(0, 1000000));
}

} // namespace ci::tools::deploy
