#pragma once

#include <optional>
#include <string>

#include <ci/config/config.h>

#include "common/tool.h"

namespace CLI {
class App;
}

namespace ci::tools::master {

/// `ci-master check-config FILE`: loads the config, prints OK or every error (exit 1).
void setup_check_config(CLI::App& app, Runner& runner);

/// `ci-master start [--config FILE]`: runs the master until SIGTERM or SIGINT.
void setup_start(CLI::App& app, Runner& runner);

/// `ci-master fingerprint [--config FILE] [--data-dir DIR]`: prints the worker port's certificate
/// fingerprint (creating the self-signed certificate when the config names none and it is
/// missing, as `start` does).
void setup_fingerprint(CLI::App& app, Runner& runner);

/// `ci-master render-user-data --config FILE --class CLASS`: prints the user data of an EC2
/// class's instances, the one-time token masked.
void setup_render_user_data(CLI::App& app, Runner& runner);

/// `ci-master hash-password [--pbkdf2]`: prints the PHC hash of a password read from the
/// terminal (asked twice, no echo) or stdin, for auth.users.
void setup_hash_password(CLI::App& app, Runner& runner);

/// The config from `config_path` (YAML, or the 0600 JSON form) or, when empty, from
/// $LIBCI_CONFIG; its diagnostics printed. nullopt with `exit_code` set when it is unusable.
std::optional<config::Config> read_master_config(const std::string& config_path, int& exit_code);

} // namespace ci::tools::master
