// The options and the config loading that every ci-deploy command that reaches a target shares.

#include "ci-deploy/target_options.h"

#include <chrono>
#include <cstdio>

#include <CLI/CLI.hpp>

#include <ci/config/load.h>
#include <ci/core/log.h>

namespace ci::tools::deploy {

namespace {

int run_target_command(const TargetCommand& command, const DeployAction& action) {
    auto checked = config::load_config(command.config_path);
    if (!checked) {
        // Refused, not "unreachable" (exit 3 is for the target and the master's API).
        print_error(checked.error());
        std::fprintf(stderr,
                     "refused: cannot read the config file %s (nothing was changed)\n",
                     command.config_path.c_str());
        return ExitFailure;
    }
    for (const auto& diagnostic : checked->diagnostics) {
        std::fprintf(stderr, "%s\n", log::redact(diagnostic.to_string()).c_str());
    }
    if (!checked->ok()) {
        const auto count = checked->errors().size();
        std::fprintf(stderr,
                     "refused: %zu error%s in %s (nothing was changed)\n",
                     count,
                     count == 1 ? "" : "s",
                     command.config_path.c_str());
        return ExitFailure;
    }
    for (const auto& secret : config::secrets(*checked->config)) {
        (void)log::add_secret(secret);
    }
    ci::deploy::Options options = command.options;
    options.timeout = std::chrono::seconds(command.timeout_seconds);
    options.health_timeout = std::chrono::seconds(command.health_timeout_seconds);
    auto progress = ci::deploy::make_terminal_progress();
    return action(*checked->config, options, *progress);
}

} // namespace

CLI::App* add_target_command(CLI::App& app,
                             Runner& runner,
                             const std::string& name,
                             const std::string& help,
                             TargetFlags flags,
                             const std::shared_ptr<TargetCommand>& command,
                             const DeployAction& action) {
    // A command that says its own exit status (status) is not given the common one.
    const bool own_exit_status = help.find("Exit ") != std::string::npos;
    auto* sub = app.add_subcommand(
        name,
        help +
            "\nThe target, runtime and paths come from CONFIG's deploy section (docs/config.md);\n"
            "ssh is the OpenSSH client in BatchMode: the key comes from the agent or --identity,\n"
            "and the host key must be known (~/.ssh/known_hosts, or --ssh-config)." +
            (own_exit_status
                 ? std::string()
                 : "\nExit status: 0 done, 1 refused (CONFIG unreadable or with errors, builds "
                   "still\nrunning, a master that is not healthy, another ci-deploy changing the "
                   "target: it\nholds DATA_DIR/run/deploy.lock), 2 rolled back (update), 3 target "
                   "or API\nunreachable."));
    sub->add_option("CONFIG", command->config_path, "The config file")->default_str("config.yml");
    sub->add_option("--identity,-i",
                    command->options.ssh.identity,
                    "The ssh private key file (default: the agent's keys, then ssh's own)");
    sub->add_option("--ssh-config,-F",
                    command->options.ssh.config,
                    "An ssh config file to use instead of ~/.ssh/config (ssh -F)");
    sub->add_option("--api",
                    command->options.api_url,
                    "The master's API as seen from here (default http://HOST:WEB_PORT, HOST from "
                    "deploy.target)");
    if (flags.waits_for_builds) {
        sub->add_option("--timeout",
                        command->timeout_seconds,
                        "Seconds to wait for running builds before refusing (exit 1)")
            ->default_str("1800")
            ->check(CLI::Range(0, 7 * 86400));
        sub->add_flag("--force",
                      command->options.force,
                      "Do not wait for running builds: they get the master's shutdown grace (60 s) "
                      "to finish, then end `retry` and run again");
    }
    if (flags.starts) {
        sub->add_option("--health-timeout",
                        command->health_timeout_seconds,
                        "Seconds a started master has to answer /healthz with 200")
            ->default_str("60")
            ->check(CLI::Range(1, 3600));
    }
    sub->callback([&runner, command, action] {
        runner = [command, action] { return run_target_command(*command, action); };
    });
    return sub;
}

} // namespace ci::tools::deploy
