// `ci-master fingerprint [--config FILE] [--data-dir DIR] [--create]`

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
    bool create = false;
};

int run_fingerprint(const FingerprintCommand& command) {
    int exit_code = ExitOk;
    auto config = read_master_config(command.config_path, exit_code);
    if (!config) {
        return exit_code;
    }
    auto fingerprint = ci::master::worker_certificate_fingerprint(
        *config,
        command.data_dir,
        command.create ? ci::master::MissingCertificate::Create
                       : ci::master::MissingCertificate::Refuse);
    if (!fingerprint) {
        print_error(fingerprint.error());
        const auto code = fingerprint.error().code;
        return code == ErrorCode::InvalidArgument || code == ErrorCode::NotFound ? ExitFailure
                                                                                 : ExitError;
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
        "buildmaster.host in DATA_DIR/tls that the master created on its first start. When\n"
        "DATA_DIR/tls/cert.pem is missing (not the master's --data-dir?) it refuses, naming\n"
        "the path, unless --create is given (then it creates one; an existing certificate is\n"
        "kept: to rotate it, remove cert.pem and key.pem first, see docs/api.md).\n"
        "Exit status: 0 printed, 1 the config is invalid, TLS is off, there is no\n"
        "certificate or the files cannot be used, 2 usage, 3 an error.");
    sub->add_option("--config",
                    command->config_path,
                    "config.yml, or the JSON form (*.json); default: $LIBCI_CONFIG");
    sub->add_option("--data-dir", command->data_dir, "The master's --data-dir")->default_str(".");
    sub->add_flag("--create",
                  command->create,
                  "Create the self-signed certificate in DATA_DIR/tls when it is missing");
    sub->callback([&runner, command] { runner = [command] { return run_fingerprint(*command); }; });
}

} // namespace ci::tools::master
