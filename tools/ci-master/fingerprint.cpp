// `ci-master fingerprint [--config FILE] [--data-dir DIR]`

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include <ci/master/master.h>

#include "ci-master/commands.h"

namespace ci::tools::master {

namespace {

struct FingerprintCommand {
    std::string config_path;
    std::string data_dir = ".";
};

int run_fingerprint(const FingerprintCommand& command) {
    int exit_code = ExitOk;
    auto config = read_master_config(command.config_path, exit_code);
    if (!config) {
        return exit_code;
    }
    auto fingerprint = ci::master::worker_certificate_fingerprint(*config, command.data_dir);
    if (!fingerprint) {
        print_error(fingerprint.error());
        return fingerprint.error().code == ErrorCode::InvalidArgument ? ExitFailure : ExitError;
    }
    std::printf("%s\n", fingerprint->c_str());
    return ExitOk;
}

} // namespace

void setup_fingerprint(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<FingerprintCommand>();
    auto* sub = app.add_subcommand(
        "fingerprint",
        "Print the SHA-256 fingerprint of the worker port's TLS certificate, what workers pin\n"
        "with `ci-worker start --fingerprint` (e.g. in EC2 user data). The certificate is\n"
        "buildmaster.tls.cert when the config names one; otherwise the self-signed one for\n"
        "buildmaster.host in DATA_DIR/tls, created now if the master has not created it yet.\n"
        "Exit status: 0 printed, 1 the config is invalid, TLS is off or the files cannot be\n"
        "used, 2 usage, 3 an error.");
    sub->add_option("--config",
                    command->config_path,
                    "config.yml, or the JSON form (*.json); default: $LIBCI_CONFIG");
    sub->add_option("--data-dir", command->data_dir, "The master's --data-dir")->default_str(".");
    sub->callback([&runner, command] { runner = [command] { return run_fingerprint(*command); }; });
}

} // namespace ci::tools::master
