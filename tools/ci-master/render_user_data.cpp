// `ci-master render-user-data --config FILE --class CLASS [--data-dir DIR]`

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/master/master.h>

#include "ci-master/commands.h"

namespace ci::tools::master {

namespace {

struct RenderCommand {
    std::string config_path;
    std::string worker_class;
    std::string data_dir = ".";
};

int run_render(const RenderCommand& command) {
    int exit_code = ExitOk;
    auto config = read_master_config(command.config_path, exit_code);
    if (!config) {
        return exit_code;
    }
    const auto found = config->slaves.find(command.worker_class);
    const auto* ec2 =
        found == config->slaves.end() ? nullptr : std::get_if<config::Ec2Workers>(&found->second);
    if (ec2 == nullptr) {
        print_error(Error{ErrorCode::InvalidArgument,
                          fmt::format("slaves.{}: {}",
                                      command.worker_class,
                                      found == config->slaves.end()
                                          ? "no such worker class in the config"
                                          : "not an EC2 worker class (it has no ami)"),
                          std::nullopt});
        return ExitFailure;
    }
    // The renderer the master launches with: the template checked as at start.
    auto renderer = ci::master::ec2_user_data_renderer(*config);
    if (!renderer) {
        print_error(renderer.error());
        return renderer.error().code == ErrorCode::InvalidArgument ? ExitFailure : ExitError;
    }
    auto fingerprint = ci::master::worker_certificate_fingerprint(
        *config, command.data_dir, ci::master::MissingCertificate::Refuse);
    if (!fingerprint) {
        print_error(fingerprint.error());
        return fingerprint.error().code == ErrorCode::InvalidArgument ||
                       fingerprint.error().code == ErrorCode::NotFound
                   ? ExitFailure
                   : ExitError;
    }
    // What differs per instance, or is secret, is shown as what it stands for.
    auto rendered = (*renderer)(ci::master::Ec2Launch{command.worker_class,
                                                      command.worker_class + "/[instance id]",
                                                      "[one-time token]",
                                                      config->buildmaster.worker_port,
                                                      *fingerprint});
    if (!rendered) {
        const std::string file =
            ec2->user_data_template.empty() ? "(default template)" : ec2->user_data_template;
        print_error(Error{rendered.error().code,
                          fmt::format("{}:{}", file, rendered.error().message),
                          std::nullopt});
        return ExitFailure;
    }
    std::fwrite(rendered->data(), 1, rendered->size(), stdout);
    return std::fflush(stdout) == 0 ? ExitOk : ExitError;
}

} // namespace

void setup_render_user_data(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<RenderCommand>();
    auto* sub = app.add_subcommand(
        "render-user-data",
        "Print the user data an instance of the EC2 class CLASS would boot with: the class's\n"
        "user_data_template (else the default, share/user-data/worker.cloud-config) with its\n"
        "placeholders filled in, so that a template can be checked before anything boots.\n"
        "What is secret or differs per instance is masked: the one-time token shows as\n"
        "[one-time token], the worker name as CLASS/[instance id]. The fingerprint is the\n"
        "worker port's certificate's (as `ci-master fingerprint`): DATA_DIR must be the\n"
        "master's --data-dir; without a certificate in DATA_DIR/tls it refuses, naming the path.\n"
        "Exit status: 0 printed, 1 the config or template is invalid, CLASS is not an EC2\n"
        "class, TLS is off, or there is no certificate, 2 usage, 3 an error (a file cannot be\n"
        "read).");
    sub->add_option("--config",
                    command->config_path,
                    "config.yml, or the JSON form (*.json); default: $LIBCI_CONFIG");
    sub->add_option("--class", command->worker_class, "An EC2 worker class: slaves.CLASS")
        ->required();
    sub->add_option("--data-dir", command->data_dir, "The master's --data-dir")->default_str(".");
    sub->callback([&runner, command] { runner = [command] { return run_render(*command); }; });
}

} // namespace ci::tools::master
