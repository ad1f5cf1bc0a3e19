#pragma once

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::master {

/// `ci-master check-config FILE`: loads the config, prints OK or every error (exit 1).
void setup_check_config(CLI::App& app, Runner& runner);

/// `ci-master start [--config FILE]`: runs the master until SIGTERM or SIGINT.
void setup_start(CLI::App& app, Runner& runner);

} // namespace ci::tools::master
