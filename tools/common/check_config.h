#pragma once

// The configuration check that `ci-master check-config` and `ci-deploy check` share.

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <ci/core/error.h>

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::config {
struct Config;
}

namespace ci::tools {

/// What a tool checks of a valid config beyond the loader (ci-deploy: the deploy settings its
/// commands need). Its error is printed as "FILE: message" and counts as one error.
using ExtraCheck = std::function<Status(const config::Config&)>;

/// Checks a configuration and prints the outcome: every warning and error on standard error, one
/// per line as "file:line:column: key.path: message", then "OK" on standard output, or the
/// number of errors on standard error. A path ending in ".json" is read as the JSON form (which
/// must be mode 0600); no path means the JSON in $LIBCI_CONFIG, which is then removed from the
/// environment. Returns ExitOk, ExitFailure (errors in the config), ExitUsage (no path and no
/// variable) or ExitError (unreadable).
/// `extra`, when set, runs on a config that passed every other check.
[[nodiscard]] int check_config(const std::optional<std::string>& path,
                               const ExtraCheck& extra = {});

/// Adds a subcommand `name` to `app` that runs check_config on its FILE argument. With
/// `default_file` empty, FILE may be left out to check $LIBCI_CONFIG; otherwise leaving it out
/// checks `default_file`. `purpose` opens the subcommand's --help; the output format and exit
/// codes are appended to it. `extra` as for check_config.
void add_check_config_command(CLI::App& app,
                              Runner& runner,
                              std::string_view name,
                              std::string_view purpose,
                              std::string_view default_file,
                              ExtraCheck extra = {});

} // namespace ci::tools
