#pragma once

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::deploy {

/// `ci-deploy check [CONFIG]`: validates a deployment's config.yml; prints OK or every error
/// (exit 1).
void setup_check(CLI::App& app, Runner& runner);
/// `ci-deploy start [CONFIG]`: installs and starts a master on the config's deploy.target.
void setup_start(CLI::App& app, Runner& runner);
/// `ci-deploy update [CONFIG]`: the update runbook (wait for builds, announce, swap, health,
/// roll back).
void setup_update(CLI::App& app, Runner& runner);
/// `ci-deploy restart [CONFIG]`: sends the config again and restarts the same master.
void setup_restart(CLI::App& app, Runner& runner);
/// `ci-deploy stop [CONFIG]`: stops the master once its builds ended.
void setup_stop(CLI::App& app, Runner& runner);
/// `ci-deploy status [CONFIG]`: version, uptime, health, running builds, workers.
void setup_status(CLI::App& app, Runner& runner);
/// `ci-deploy logs [--follow] [CONFIG]`: the master's log.
void setup_logs(CLI::App& app, Runner& runner);

} // namespace ci::tools::deploy
