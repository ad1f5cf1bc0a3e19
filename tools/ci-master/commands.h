#pragma once

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::master {

/// `ci-master check-config FILE`: loads the config, prints OK or every error (exit 1).
void setup_check_config(CLI::App& app, Runner& runner);

} // namespace ci::tools::master
