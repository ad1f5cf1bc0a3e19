// `ci-worker start --master HOST:PORT --name NAME [--secret-file FILE] [options]`

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/worker/agent.h>

#include "ci-worker/commands.h"
#include "common/signals.h"

namespace ci::tools::worker {

namespace {

struct StartCommand {
    std::string master;
    std::string name;
    std::string secret_file;
    std::string work_dir = "ci-worker";
    std::string cache_dir;
    std::string ca_file;
    std::string fingerprint;
    std::string step_user;
    bool insecure = false;
    int max_builds = 1;
};

constexpr const char* secret_variable = "CI_WORKER_SECRET";

// The secret: from --secret-file (its first line), else from $CI_WORKER_SECRET, which is then
// removed from the environment so that no build step sees it.
Result<std::string> read_secret(const StartCommand& command) {
    if (!command.secret_file.empty()) {
        std::ifstream in(command.secret_file);
        if (!in) {
            return fail(ErrorCode::NotFound,
                        fmt::format("cannot read the secret file {}", command.secret_file));
        }
        std::string secret;
        std::getline(in, secret);
        if (secret.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("the secret file {} is empty", command.secret_file));
        }
        return secret;
    }
    if (const char* value = std::getenv(secret_variable); value != nullptr && *value != '\0') {
        std::string secret = value;
        ::unsetenv(secret_variable);
        return secret;
    }
    return fail(ErrorCode::InvalidArgument,
                fmt::format("no secret: give --secret-file FILE or set ${}", secret_variable));
}

int run_start(const StartCommand& command) {
    const auto colon = command.master.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        !(std::istringstream(command.master.substr(colon + 1)) >> port) || port < 1 ||
        port > 65535) {
        std::fprintf(
            stderr, "error: --master must be HOST:PORT, got \"%s\"\n", command.master.c_str());
        return ExitUsage;
    }
    auto secret = read_secret(command);
    if (!secret) {
        print_error(secret.error());
        return ExitUsage;
    }
    (void)log::add_secret(*secret);
    ci::worker::WorkerOptions options;
    options.host = command.master.substr(0, colon);
    if (options.host.starts_with('[') && options.host.ends_with(']')) {
        options.host = options.host.substr(1, options.host.size() - 2);
    }
    options.port = static_cast<std::uint16_t>(port);
    options.name = command.name;
    options.runner.log_secrets.push_back(*secret);
    options.secret = std::move(*secret);
    options.max_builds = command.max_builds;
    options.ca_file = command.ca_file;
    options.fingerprint = command.fingerprint;
    options.insecure = command.insecure;
    options.runner.work_root = command.work_dir;
    if (!command.step_user.empty()) {
        auto user = lookup_user(command.step_user);
        if (!user) {
            std::fprintf(stderr, "error: --step-user: %s\n", user.error().message.c_str());
            return ExitUsage;
        }
        options.runner.step_user = std::move(*user);
    }
    options.runner.cache_dir = command.cache_dir.empty()
                                   ? std::filesystem::path(command.work_dir) / "cache"
                                   : std::filesystem::path(command.cache_dir);
    if (const char* token = std::getenv("CI_GIT_TOKEN")) {
        options.runner.git_token = token;
        (void)log::add_secret(options.runner.git_token);
    }
    if (const char* key = std::getenv("CI_GIT_SSH_KEY")) {
        options.runner.ssh_key = key;
    }
    block_stop_signals();
    // After the mask: the reaper's thread must not take SIGTERM. Leftovers of a step whose
    // supervisor was killed come to the worker, which kills them.
    if (auto subreaper = become_subreaper(); !subreaper) {
        log::warn("{}: leftovers of a step whose supervisor was killed go to init",
                  subreaper.error().message);
    }
    std::stop_source drain;
    std::thread([&drain] {
        const int signal = wait_for_stop_signal();
        log::info("signal {} received: finishing the running builds, then exiting", signal);
        drain.request_stop();
    }).detach();
    auto status = ci::worker::run_worker(options, drain.get_token());
    if (!status) {
        print_error(status.error());
        if (status.error().code == ErrorCode::InvalidArgument) {
            return ExitUsage;
        }
        return status.error().code == ErrorCode::PermissionDenied ? ExitFailure : ExitError;
    }
    return ExitOk;
}

} // namespace

void setup_start(CLI::App& app, Runner& runner) {
    auto command = std::make_shared<StartCommand>();
    auto* sub = app.add_subcommand(
        "start",
        "Connect to a master and run the builds it sends, until SIGTERM or SIGINT. The worker\n"
        "connects out (it needs no inbound port), proves its secret without sending it\n"
        "(HMAC of a one-time challenge), sends heartbeats, and reconnects with a growing delay\n"
        "when the connection drops (its running builds stop then; the master retries them).\n"
        "On SIGTERM it takes no new builds, finishes the running ones, and exits.\n"
        "The connection is TLS 1.3; the worker checks the master with --fingerprint (the\n"
        "certificate pinned: what `ci-master fingerprint` prints) or --ca (a CA file; the\n"
        "certificate must name the host of --master) and refuses any other. --insecure\n"
        "(plaintext) only works with a master whose config says buildmaster.tls: false.\n"
        "Secrets come from files or the environment, never from arguments: the worker's secret\n"
        "from --secret-file or $CI_WORKER_SECRET (removed from the environment), git\n"
        "credentials from $CI_GIT_TOKEN (HTTPS) and $CI_GIT_SSH_KEY (key file; otherwise the\n"
        "SSH agent). Build steps see none of them, in their environment or through /proc: the\n"
        "worker overwrites them in its initial environment block and is not dumpable.\n"
        "Each step runs under a supervisor that stops every process of it (setsid ones too)\n"
        "when it ends; --step-user runs the steps as another user (the worker must be root).\n"
        "Exit status: 0 stopped by a signal, 1 the master refused the name or secret, or its\n"
        "certificate is not the expected one, 2 usage, 3 an error.");
    sub->add_option("--master", command->master, "The master's worker port: HOST:PORT")->required();
    sub->add_option("--name", command->name, "This worker's name in the master's config: CLASS/I")
        ->required();
    sub->add_option("--step-user",
                    command->step_user,
                    "Run build steps as this user (setgid/setuid after fork; the worker must be "
                    "root); each build gives its work directory to that user first");
    sub->add_option("--secret-file",
                    command->secret_file,
                    "A file whose first line is this worker's password (else $CI_WORKER_SECRET)");
    sub->add_option("--work-dir",
                    command->work_dir,
                    "Where builds run: WORK_DIR/BUILDER/SLOT, one directory per build running\n"
                    "at once (slot 0, 1, ...), reused by later builds of the builder")
        ->default_str("ci-worker");
    sub->add_option("--cache-dir", command->cache_dir, "Git mirrors (default: WORK_DIR/cache)");
    auto* fingerprint =
        sub->add_option("--fingerprint",
                        command->fingerprint,
                        "sha256:HEX: the master's certificate must be exactly this one (pinning)");
    auto* ca = sub->add_option("--ca",
                               command->ca_file,
                               "A PEM file of CA certificates: the master's certificate must\n"
                               "chain to one and name the host of --master");
    auto* insecure = sub->add_flag(
        "--insecure",
        command->insecure,
        "No TLS: only for a master with buildmaster.tls: false (a warning each connection)");
    fingerprint->excludes(ca)->excludes(insecure);
    ca->excludes(insecure);
    sub->add_option("--max-builds",
                    command->max_builds,
                    "Builds at once this worker reports (the master's config decides)")
        ->default_str("1")
        ->check(CLI::Range(1, 10000));
    sub->callback([&runner, command] { runner = [command] { return run_start(*command); }; });
}

} // namespace ci::tools::worker
