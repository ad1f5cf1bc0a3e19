// `ci-master start [--config FILE] [options]`

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include <CLI/CLI.hpp>
#include <arpa/inet.h>
#include <fmt/format.h>

#include <ci/config/load.h>
#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/master/master.h>

#include "ci-master/commands.h"
#include "common/cgroups.h"
#include "common/signals.h"

namespace ci::tools::master {

// The config from --config (YAML, or the 0600 JSON form) or from $LIBCI_CONFIG.
std::optional<config::Config> read_master_config(const std::string& config_path, int& exit_code) {
    if (config_path.empty()) {
        auto taken = config::take_config_from_environment();
        if (!taken) {
            std::fprintf(stderr, "%s\n", log::redact(taken.error().message).c_str());
            exit_code = ExitFailure;
            return std::nullopt;
        }
        if (!*taken) {
            std::fprintf(stderr,
                         "error: no --config FILE given and $%s is not set\n",
                         std::string(config::config_environment_variable).c_str());
            exit_code = ExitUsage;
            return std::nullopt;
        }
        return std::move(**taken);
    }
    if (config_path.ends_with(".json")) {
        auto loaded = config::load_config_json_file(config_path);
        if (!loaded) {
            print_error(loaded.error());
            exit_code = loaded.error().code == ErrorCode::ConfigInvalid ||
                                loaded.error().code == ErrorCode::ConfigSyntax
                            ? ExitFailure
                            : ExitError;
            return std::nullopt;
        }
        return std::move(*loaded);
    }
    auto checked = config::load_config(config_path);
    if (!checked) {
        print_error(checked.error());
        exit_code = ExitError;
        return std::nullopt;
    }
    for (const auto& diagnostic : checked->diagnostics) {
        std::fprintf(stderr, "%s\n", log::redact(diagnostic.to_string()).c_str());
    }
    if (!checked->ok()) {
        const auto count = checked->errors().size();
        std::fprintf(stderr,
                     "%zu error%s: the master does not start with this config\n",
                     count,
                     count == 1 ? "" : "s");
        exit_code = ExitFailure;
        return std::nullopt;
    }
    return std::move(*checked->config);
}

namespace {

struct StartCommand {
    std::string config_path;
    std::string listen = "0.0.0.0";
    std::string data_dir = ".";
    std::string ports_file;
    int shutdown_grace = 60;
    int heartbeat = 10;
    int ec2_reconcile = 180;
    std::string ec2_timeout = "30";
    std::string cgroup = "auto";
};

// Written once both ports are bound, atomically (tests and scripts wait for it).
bool write_ports_file(const std::string& path, std::uint16_t web, std::uint16_t worker) {
    const auto temporary = path + ".tmp";
    {
        std::ofstream out(temporary, std::ios::trunc);
        out << fmt::format("{{\"web_port\": {}, \"worker_port\": {}}}\n", web, worker);
        if (!out) {
            return false;
        }
    }
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    return !error;
}

int run_start(const StartCommand& command) {
    auto ec2_timeout = parse_seconds("--ec2-timeout", command.ec2_timeout, 600);
    if (ec2_timeout && ec2_timeout->count() == 0) {
        ec2_timeout = fail(ErrorCode::InvalidArgument,
                           "--ec2-timeout: 0 would let one EC2 call block the pool forever");
    }
    if (!ec2_timeout) {
        std::fprintf(stderr, "error: %s\n", ec2_timeout.error().message.c_str());
        return ExitUsage;
    }
    int exit_code = ExitOk;
    auto config = read_master_config(command.config_path, exit_code);
    if (!config) {
        return exit_code;
    }
    for (const auto& secret : config::secrets(*config)) {
        (void)log::add_secret(secret);
    }
    ci::master::MasterOptions options;
    options.listen_address = command.listen;
    options.data_dir = command.data_dir;
    options.shutdown_grace = std::chrono::seconds(command.shutdown_grace);
    options.heartbeat = std::chrono::seconds(command.heartbeat);
    options.ec2_reconcile = std::chrono::seconds(command.ec2_reconcile);
    options.ec2_timeout = *ec2_timeout;
    // Each EC2 instance boots with its class's template filled in (what render-user-data
    // prints); a template that cannot be read stops the start, before anything launches.
    auto user_data = ci::master::ec2_user_data_renderer(*config);
    if (!user_data) {
        print_error(user_data.error());
        return user_data.error().code == ErrorCode::InvalidArgument ? ExitFailure : ExitError;
    }
    options.ec2_user_data = std::move(*user_data);
    // Git credentials of local workers and the poller: from the environment, never from
    // arguments.
    if (const char* token = std::getenv("CI_GIT_TOKEN")) {
        options.git_token = token;
        (void)log::add_secret(options.git_token);
    }
    if (const char* key = std::getenv("CI_GIT_SSH_KEY")) {
        options.ssh_key = key;
    }
    // Only a master with local workers runs steps (and moves into a cgroup leaf for them).
    if (std::ranges::any_of(config->slaves, [](const auto& entry) {
            return std::holds_alternative<config::LocalWorkers>(entry.second);
        })) {
        auto cgroups = open_step_cgroups(command.cgroup);
        if (!cgroups) {
            print_error(cgroups.error());
            return ExitUsage;
        }
        options.step_cgroups = *cgroups;
    }
    // Every thread the master starts inherits this mask; the main thread waits for the signal.
    block_stop_signals();
    // After the mask: the reaper's thread must not take SIGTERM. Leftovers of a local step whose
    // supervisor was killed come to the master, which kills them.
    if (auto subreaper = become_subreaper(); !subreaper) {
        log::warn("{}: leftovers of a local step whose supervisor was killed go to init",
                  subreaper.error().message);
    }
    auto master = ci::master::Master::start(*config, options);
    if (!master) {
        print_error(master.error());
        return ExitError;
    }
    const auto web = (*master)->web_port();
    const auto worker = (*master)->worker_port();
    // An IPv6 address goes between brackets in a URL.
    std::string host = command.listen == "0.0.0.0" ? config->buildmaster.host : command.listen;
    if (host.find(':') != std::string::npos && !host.starts_with('[')) {
        host = "[" + host + "]";
    }
    log::info("serving http://{}:{}/ (web UI /, REST API /api/v1, GitHub webhooks "
              "/change_hook/github, /metrics); workers connect to port {}",
              host,
              web,
              worker);
    if (!command.ports_file.empty() && !write_ports_file(command.ports_file, web, worker)) {
        log::error("could not write {}", command.ports_file);
        return ExitError;
    }
    const int signal = wait_for_stop_signal();
    log::info("signal {} received: shutting down (running builds get up to {} s)",
              signal,
              command.shutdown_grace);
    (*master)->shutdown();
    return ExitOk;
}

} // namespace

void setup_start(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<StartCommand>();
    auto* sub = app.add_subcommand(
        "start",
        "Run the master until SIGTERM or SIGINT: the HTTP service on buildmaster.web_port\n"
        "(the web UI at /, GitHub webhooks at POST /change_hook/github, the REST API under\n"
        "/api/v1, build logs, /healthz, /metrics), the worker port buildmaster.worker_port, the "
        "scheduler and the\n"
        "state database buildmaster.state (SQLite; relative to the working directory).\n"
        "Workers of classes with `local: true` run inside the master; static workers connect\n"
        "with `ci-worker start`. EC2 classes (`ami`) launch instances whose user data is the\n"
        "class's template filled in (what `render-user-data` prints; templates are read at\n"
        "start); after a crash, the next start adopts the instances whose workers can log in\n"
        "again and terminates the others.\n"
        "The config comes from --config (YAML, or the JSON form, which must be mode 0600) or,\n"
        "without --config, from $LIBCI_CONFIG (JSON; removed from the environment at once).\n"
        "A config with errors never starts a master (exit 1, every error printed).\n"
        "On SIGTERM: no new webhooks, workers or builds; running builds get --shutdown-grace\n"
        "seconds to finish, then stop and are queued again; EC2 instances are terminated;\n"
        "everything is on disk before exit.\n"
        "Exit status: 0 stopped by a signal, 1 bad config, 2 usage, 3 could not start (port in\n"
        "use, state database unusable).");
    sub->add_option("--config,-c", command->config_path, "The configuration file");
    sub->add_option("--listen",
                    command->listen,
                    "The IP address both ports listen on (IPv4 or IPv6; not a host name)")
        ->default_str("0.0.0.0")
        ->check(CLI::Validator(
            [](const std::string& address) -> std::string {
                std::array<unsigned char, sizeof(in6_addr)> parsed{};
                if (::inet_pton(AF_INET, address.c_str(), parsed.data()) == 1 ||
                    ::inet_pton(AF_INET6, address.c_str(), parsed.data()) == 1) {
                    return {};
                }
                return "\"" + address + "\" is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)";
            },
            "IP"));
    sub->add_option("--data-dir",
                    command->data_dir,
                    "Where local workers keep work directories and git mirrors, and the worker\n"
                    "port keeps its self-signed TLS certificate (DATA_DIR/tls)")
        ->default_str(".");
    sub->add_option("--ports-file",
                    command->ports_file,
                    "Write {\"web_port\": N, \"worker_port\": M} here once both are bound "
                    "(useful with port 0)");
    sub->add_option("--shutdown-grace",
                    command->shutdown_grace,
                    "Seconds running builds may go on after SIGTERM")
        ->default_str("60")
        ->check(CLI::Range(0, 86400));
    add_cgroup_option(*sub, command->cgroup);
    sub->add_option("--heartbeat",
                    command->heartbeat,
                    "Seconds between worker heartbeats; a worker silent for three of them is lost")
        ->default_str("10")
        ->check(CLI::Range(1, 3600));
    sub->add_option("--ec2-reconcile",
                    command->ec2_reconcile,
                    "Seconds between reconciles of the EC2 instances tagged ci:master=<host>\n"
                    "with what the master knows (unknown ones are terminated)")
        ->default_str("180")
        ->check(CLI::Range(1, 86400));
    sub->add_option("--ec2-timeout",
                    command->ec2_timeout,
                    "Seconds one attempt of an EC2 call may take (decimals allowed); a call\n"
                    "that timed out is retried, up to 4 attempts in all")
        ->default_str("30");
    sub->callback([&runner, command] { runner = [command] { return run_start(*command); }; });
}

} // namespace ci::tools::master
