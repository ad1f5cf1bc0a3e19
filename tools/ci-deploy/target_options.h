#pragma once

// What every ci-deploy command that reaches a target shares: the CONFIG argument, the ssh and
// API options, loading and checking the config, and running the command on it.

#include <functional>
#include <memory>
#include <string>

#include <ci/config/config.h>
#include <ci/deploy/deployer.h>

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::deploy {

/// The options of one command, filled in by CLI11.
struct TargetCommand {
    std::string config_path = "config.yml";
    ci::deploy::Options options;
    int timeout_seconds = 1800;
    int health_timeout_seconds = 60;
};

/// What a command does once its config is loaded and checked.
using DeployAction =
    std::function<int(const config::Config&, const ci::deploy::Options&, ci::deploy::Progress&)>;

/// Which options a command takes besides CONFIG, --identity, --ssh-config and --api.
struct TargetFlags {
    bool waits_for_builds = false; ///< --timeout, --force
    bool starts = false;           ///< --health-timeout
};

/// Adds subcommand `name` with `help` (the exit statuses are appended), its options, and the
/// runner that loads CONFIG (every error printed, exit 1 when it has any) and calls `action`.
/// Returns the subcommand so that a command can add options of its own to `command`.
CLI::App* add_target_command(CLI::App& app,
                             Runner& runner,
                             const std::string& name,
                             const std::string& help,
                             TargetFlags flags,
                             const std::shared_ptr<TargetCommand>& command,
                             const DeployAction& action);

} // namespace ci::tools::deploy
