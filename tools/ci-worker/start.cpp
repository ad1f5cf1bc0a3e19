// `ci-worker start [--master HOST:PORT] [--name NAME] [--secret-file FILE] [options]`

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/worker/agent.h>
#include <ci/worker/secret_state.h>

#include "ci-worker/commands.h"
#include "common/cgroups.h"
#include "common/signals.h"

namespace ci::tools::worker {

namespace {

struct StartCommand {
    std::string master;
    std::string name;
    std::string secret_file;
    std::string secret_state;
    std::string work_dir = "ci-worker";
    std::string cache_dir;
    std::string ca_file;
    std::string fingerprint;
    std::string step_user;
    std::string cgroup = "auto";
    bool insecure = false;
    int max_builds = 1;
    std::string imds;
};

constexpr const char* secret_variable = "CI_WORKER_SECRET";
constexpr const char* master_variable = "CI_MASTER";
constexpr const char* name_variable = "CI_WORKER_NAME";
constexpr const char* fingerprint_variable = "CI_MASTER_FINGERPRINT";

// The value of $NAME (empty when unset), removed from the environment so that build steps do
// not see how this worker reaches its master.
std::string take_variable(const char* name) {
    std::string value;
    if (const char* set = std::getenv(name); set != nullptr) {
        value = set;
    }
    ::unsetenv(name);
    return value;
}

// What the flags leave out, from the environment (EC2 user data writes these into the systemd
// unit's EnvironmentFile): --master from $CI_MASTER, --name from $CI_WORKER_NAME, and
// --fingerprint from $CI_MASTER_FINGERPRINT when neither --ca nor --insecure is given.
// The variables are removed from the environment whether used or not.
Status fill_from_environment(StartCommand& command) {
    auto master = take_variable(master_variable);
    auto name = take_variable(name_variable);
    auto fingerprint = take_variable(fingerprint_variable);
    if (command.master.empty()) {
        command.master = std::move(master);
    }
    if (command.name.empty()) {
        command.name = std::move(name);
    }
    if (command.fingerprint.empty() && command.ca_file.empty() && !command.insecure) {
        command.fingerprint = std::move(fingerprint);
    }
    if (command.master.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("no master: give --master HOST:PORT or set ${}", master_variable));
    }
    if (command.name.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("no worker name: give --name NAME or set ${}", name_variable));
    }
    return {};
}

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

int run_start(StartCommand command) {
    if (auto status = fill_from_environment(command); !status) {
        print_error(status.error());
        return ExitUsage;
    }
    const auto colon = command.master.rfind(':');
    int port = 0;
    if (colon == std::string::npos ||
        !(std::istringstream(command.master.substr(colon + 1)) >> port) || port < 1 ||
        port > 65535) {
        std::fprintf(
            stderr, "error: --master must be HOST:PORT, got \"%s\"\n", command.master.c_str());
        return ExitUsage;
    }
    std::filesystem::path secret_state;
    std::optional<std::string> kept;
    if (!command.secret_state.empty()) {
        // The secret the last login derived, when this worker has logged in before (an EC2
        // instance stopped and started again): its first one (the token) is spent.
        secret_state = std::filesystem::absolute(command.secret_state).lexically_normal();
        auto loaded = ci::worker::load_secret_state(secret_state, command.name);
        if (!loaded) {
            print_error(loaded.error());
            return ExitUsage;
        }
        kept = std::move(*loaded);
    }
    // Read even when a kept secret replaces it: $CI_WORKER_SECRET leaves the environment and
    // the spent token stays out of the logs. Only a worker with nothing kept needs it.
    auto secret = read_secret(command);
    if (secret) {
        (void)log::add_secret(*secret);
    } else if (!kept) {
        print_error(secret.error());
        return ExitUsage;
    }
    if (kept) {
        (void)log::add_secret(*kept);
        log::info("logging in with the secret kept in {} (the first login spent the one-time "
                  "token)",
                  secret_state.string());
        secret = std::move(*kept);
    }
    ci::worker::WorkerOptions options;
    options.host = command.master.substr(0, colon);
    if (options.host.starts_with('[') && options.host.ends_with(']')) {
        options.host = options.host.substr(1, options.host.size() - 2);
    }
    options.port = static_cast<std::uint16_t>(port);
    options.name = command.name;
    options.runner.log_secrets.push_back(*secret);
    options.secret = std::move(*secret);
    options.secret_state = std::move(secret_state);
    options.max_builds = command.max_builds;
    options.ca_file = command.ca_file;
    options.fingerprint = command.fingerprint;
    options.insecure = command.insecure;
    options.imds_url = command.imds;
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
    auto cgroups = open_step_cgroups(command.cgroup);
    if (!cgroups) {
        print_error(cgroups.error());
        return ExitUsage;
    }
    options.runner.cgroups = *cgroups;
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
        "Without --master, --name or --fingerprint (and without --ca and --insecure), their\n"
        "values come from $CI_MASTER, $CI_WORKER_NAME and $CI_MASTER_FINGERPRINT, as EC2 user\n"
        "data writes them (/etc/libci/worker.env); the worker removes these variables from its\n"
        "environment.\n"
        "Secrets come from files or the environment, never from arguments: the worker's secret\n"
        "from --secret-file or $CI_WORKER_SECRET (removed from the environment), or, once an\n"
        "EC2 worker has logged in, from --secret-state (where it keeps the secret each login\n"
        "derives, so that a stopped instance started again logs in), git\n"
        "credentials from $CI_GIT_TOKEN (HTTPS) and $CI_GIT_SSH_KEY (key file; otherwise the\n"
        "SSH agent). Build steps see none of them, in their environment or through /proc: the\n"
        "worker overwrites them in its initial environment block and is not dumpable.\n"
        "Upload steps to s3:// are sent by the worker with the AWS credentials, region and\n"
        "endpoint of its environment, as the AWS CLI reads them ($AWS_ACCESS_KEY_ID,\n"
        "$AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN, ~/.aws/credentials, the instance role;\n"
        "$AWS_REGION; $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL); steps do not see the secrets.\n"
        "Each step runs under a supervisor that stops every process of it (setsid ones too)\n"
        "when it ends, and in a cgroup of its own where one can be made (--cgroup; the log\n"
        "says which at start); --step-user runs the steps as another user (the worker must be "
        "root).\n"
        "Files of the worker's class (worker_files) arrive after each login and are written\n"
        "0600 before any build; one that cannot be written stops the worker (exit 3).\n"
        "Exit status: 0 stopped by a signal, 1 the master refused the name or secret, or its\n"
        "certificate is not the expected one, 2 usage, 3 an error.");
    sub->add_option(
        "--master", command->master, "The master's worker port: HOST:PORT ($CI_MASTER)");
    sub->add_option("--name",
                    command->name,
                    "This worker's name in the master's config: CLASS/I ($CI_WORKER_NAME)");
    sub->add_option("--step-user",
                    command->step_user,
                    "Run build steps as this user (setgid/setuid after fork; the worker must be "
                    "root); each build gives its work directory to that user first");
    add_cgroup_option(*sub, command->cgroup);
    sub->add_option("--secret-file",
                    command->secret_file,
                    "A file whose first line is this worker's password (else $CI_WORKER_SECRET)");
    sub->add_option("--secret-state",
                    command->secret_state,
                    "A file where an EC2 worker keeps the secret each login derives from the\n"
                    "one before (written 0600 after each login; its first secret, the one-time\n"
                    "token, is spent at the first login). When it exists and names this worker,\n"
                    "its secret is used instead of --secret-file or $CI_WORKER_SECRET, so that an\n"
                    "instance stopped and started again (idle_action: stop) logs in again");
    sub->add_option("--work-dir",
                    command->work_dir,
                    "Where builds run: WORK_DIR/BUILDER/SLOT, one directory per build running\n"
                    "at once (slot 0, 1, ...), reused by later builds of the builder; the\n"
                    "class's worker_files with a relative path are written under it")
        ->default_str("ci-worker");
    sub->add_option("--cache-dir", command->cache_dir, "Git mirrors (default: WORK_DIR/cache)");
    auto* fingerprint =
        sub->add_option("--fingerprint",
                        command->fingerprint,
                        "sha256:HEX: the master's certificate must be exactly this one\n"
                        "(pinning; $CI_MASTER_FINGERPRINT)");
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
    sub->add_option("--imds",
                    command->imds,
                    "Watch the EC2 instance metadata service at this URL (IMDSv2; on EC2:\n"
                    "http://169.254.169.254) every second. A spot interruption notice: the worker\n"
                    "tells the master, which ends its builds as retry and runs them elsewhere at\n"
                    "once, and stops them. A rebalance recommendation: no new builds. Default:\n"
                    "not watched (off EC2 there is nothing to watch)");
    sub->callback([&runner, command] { runner = [command] { return run_start(*command); }; });
}

} // namespace ci::tools::worker
