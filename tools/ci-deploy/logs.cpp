// `ci-deploy logs [--follow] [CONFIG]`

#include <stop_token>
#include <thread>

#include <CLI/CLI.hpp>

#include "ci-deploy/commands.h"
#include "ci-deploy/target_options.h"
#include "common/signals.h"

namespace ci::tools::deploy {

void setup_logs(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<TargetCommand>();
    auto* sub = add_target_command(
        app,
        runner,
        "logs",
        "Print the master's last log lines (process: DATA_DIR/log/master.log, with the\n"
        "supervisor's notes; docker/podman: the container's log). --follow goes on printing\n"
        "new lines until interrupted (Ctrl-C or SIGTERM: then it stops ssh and exits 0).",
        TargetFlags{},
        command,
        [](const config::Config& config,
           const ci::deploy::Options& options,
           ci::deploy::Progress& progress) {
            // ssh runs in a process group of its own (ci::run_process), which Ctrl-C at the
            // terminal does not reach: wait for the signal here and stop it.
            block_stop_signals();
            std::stop_source stop;
            std::thread([stop]() mutable {
                (void)wait_for_stop_signal();
                stop.request_stop();
            }).detach();
            auto stoppable = options;
            stoppable.stop = stop.get_token();
            return ci::deploy::logs(config, stoppable, progress);
        });
    sub->add_flag("--follow,-f", command->options.follow, "Keep printing new lines");
    sub->add_option("--lines,-n", command->options.log_lines, "How many lines to print first")
        ->default_str("100")
        ->check(CLI::Range(0, 1000000));
}

} // namespace ci::tools::deploy
