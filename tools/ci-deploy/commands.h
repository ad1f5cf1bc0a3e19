#pragma once

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::deploy {

/// `ci-deploy check FILE`: validates a deployment's config.yml; prints OK or every error (exit 1).
void setup_check(CLI::App& app, Runner& runner);

} // namespace ci::tools::deploy
