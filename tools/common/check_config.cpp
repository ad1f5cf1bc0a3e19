#include "common/check_config.h"

#include <cstdio>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <ci/config/load.h>
#include <ci/config/user_data.h>
#include <ci/core/log.h>
#include <ci/master/master.h>

#include "common/tool.h"

namespace ci::tools {

namespace {

void print_diagnostics(const config::CheckedConfig& checked) {
    for (const auto& diagnostic : checked.diagnostics) {
        std::fprintf(stderr, "%s\n", log::redact(diagnostic.to_string()).c_str());
    }
}

// An error of the tool's own check, "KEY.PATH: message" (or "KEY.PATH, KEY.PATH: message"),
// as file:line:column: key.path: message when `source` is a YAML file (JSON has no positions).
std::string placed(std::string_view source, const std::string& message) {
    const auto colon = message.find(": ");
    const auto keys = message.substr(0, colon == std::string::npos ? 0 : colon);
    const bool names_keys =
        !keys.empty() &&
        keys.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_., ") == std::string::npos;
    const bool yaml = !source.starts_with('$') && !source.ends_with(".json");
    if (!yaml || !names_keys) {
        return fmt::format("{}: {}", source, message);
    }
    // At the first key named.
    auto diagnostic = config::locate(
        std::string(source), keys.substr(0, keys.find(", ")), message.substr(colon + 2));
    diagnostic.key_path = keys;
    return diagnostic.to_string();
}

// What only reading other files shows: the worker port's certificate and key, the user-data
// templates of EC2 classes; then the tool's own check (`source` names the config in its error).
int check_files(const config::Config& config, std::string_view source, const ExtraCheck& extra) {
    auto step_users = master::local_step_users(config);
    const Status users_checked =
        step_users ? Status() : Status(std::unexpected(step_users.error()));
    for (const auto& checked : {master::check_worker_certificate(config),
                                config::check_user_data_templates(config),
                                users_checked}) {
        if (!checked) {
            std::fprintf(stderr, "%s\n1 error\n", log::redact(checked.error().message).c_str());
            return ExitFailure;
        }
    }
    if (extra) {
        if (auto checked = extra(config); !checked) {
            std::fprintf(stderr,
                         "%s\n1 error\n",
                         log::redact(placed(source, checked.error().message)).c_str());
            return ExitFailure;
        }
    }
    std::printf("OK\n");
    return ExitOk;
}

int report(const config::CheckedConfig& checked, std::string_view source, const ExtraCheck& extra) {
    print_diagnostics(checked);
    if (checked.ok()) {
        for (const auto& secret : config::secrets(*checked.config)) {
            (void)log::add_secret(secret);
        }
        return check_files(*checked.config, source, extra);
    }
    const std::size_t count = checked.errors().size();
    std::fprintf(stderr, "%zu error%s\n", count, count == 1 ? "" : "s");
    return ExitFailure;
}

// The JSON form reports one Error that lists every problem, one per line.
int report(const Error& error) {
    if (error.code == ErrorCode::ConfigSyntax || error.code == ErrorCode::ConfigInvalid) {
        std::fprintf(stderr, "%s\n", log::redact(error.message).c_str());
        return ExitFailure;
    }
    print_error(error);
    return ExitError;
}

int report(const Result<config::Config>& loaded, std::string_view source, const ExtraCheck& extra) {
    if (!loaded) {
        return report(loaded.error());
    }
    return check_files(*loaded, source, extra);
}

} // namespace

int check_config(const std::optional<std::string>& path, const ExtraCheck& extra) {
    if (!path) {
        auto taken = config::take_config_from_environment();
        if (taken && !*taken) {
            print_error(Error{ErrorCode::InvalidArgument,
                              std::string("no FILE given and $") +
                                  std::string(config::config_environment_variable) + " is not set",
                              std::nullopt});
            return ExitUsage;
        }
        if (!taken) {
            return report(taken.error());
        }
        return check_files(**taken, "$" + std::string(config::config_environment_variable), extra);
    }
    if (path->ends_with(".json")) {
        return report(config::load_config_json_file(*path), *path, extra);
    }
    auto checked = config::load_config(*path);
    if (!checked) {
        print_error(checked.error());
        return ExitError;
    }
    return report(*checked, *path, extra);
}

void add_check_config_command(CLI::App& app,
                              Runner& runner,
                              std::string_view name,
                              std::string_view purpose,
                              std::string_view default_file,
                              ExtraCheck extra) {
    std::string help(purpose);
    help += "\nPrints every warning and error as file:line:column: key.path: message, then OK\n"
            "(exit 0) or the number of errors (exit 1). Exit 3 when the file cannot be read.\n"
            "FILE may be config.yml or the JSON form (*.json, mode 0600).";
    if (default_file.empty()) {
        help += "\nWithout FILE, the JSON in $LIBCI_CONFIG is checked and removed from the\n"
                "environment, as `ci-master start` does.";
    } else {
        help += "\nWithout FILE, " + std::string(default_file) + " is checked.";
    }
    auto* command = app.add_subcommand(std::string(name), help);
    auto path = std::make_shared<std::optional<std::string>>();
    if (!default_file.empty()) {
        *path = std::string(default_file);
    }
    command->add_option("FILE", *path, "config.yml, or a JSON config (*.json)");
    command->callback([&runner, path, extra = std::move(extra)] {
        runner = [path, extra] { return check_config(*path, extra); };
    });
}

} // namespace ci::tools
