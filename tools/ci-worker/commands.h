#pragma once

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::worker {

/// `ci-worker run-step [options] -- COMMAND...`: runs one build step as the worker would, with
/// its timeout and SIGTERM grace, streaming its output.
void setup_run_step(CLI::App& app, Runner& runner);

/// `ci-worker checkout URL DEST --branch B [--target auto|none|NAME] [--json]`: the merge-forward
/// checkout a build starts with.
void setup_checkout(CLI::App& app, Runner& runner);

/// `ci-worker start --master HOST:PORT --name NAME`: connects to a master and runs its builds.
void setup_start(CLI::App& app, Runner& runner);

/// Removes "--" and what follows it from the command line when it belongs to run-step, keeping
/// it as the step's command (CLI11 2.1 mishandles "--" in a prefix command). Call before parsing.
void take_step_command(int& argc, char** argv);

} // namespace ci::tools::worker
