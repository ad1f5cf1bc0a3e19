// `ci-master check-config [FILE]`

#include "common/check_config.h"

#include "ci-master/commands.h"

namespace ci::tools::master {

void setup_check_config(CLI::App& app, Runner& runner) {
    add_check_config_command(app,
                             runner,
                             "check-config",
                             "Check a master's configuration without starting anything.",
                             /*default_file=*/"");
}

} // namespace ci::tools::master
