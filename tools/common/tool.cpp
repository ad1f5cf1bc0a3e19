#include "common/tool.h"

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include <ci/core/log.h>
#include <ci/core/suggest.h>
#include <ci/version.h>

namespace ci::tools {

std::string version_text(std::string_view tool) {
    std::string text = std::string(tool) + " " + std::string(ci::version()) + " (libci " +
                       std::string(ci::version());
    const char* separator = "; ";
    for (const auto& library : ci::library_versions()) {
        text += separator + library.name + " " + library.version;
        separator = ", ";
    }
    return text + ")";
}

namespace {

// CLI11's help, with the usage lines set_usage() gave.
class UsageFormatter final : public CLI::Formatter {
public:
    std::string make_usage(const CLI::App* app, std::string name) const override {
        if (const auto found = usages.find(app); found != usages.end()) {
            return get_label("Usage") + ": " + found->second + "\n";
        }
        return CLI::Formatter::make_usage(app, std::move(name));
    }
    std::map<const CLI::App*, std::string> usages;
};

} // namespace

void set_usage(CLI::App& command, std::string usage) {
    if (auto formatter = std::dynamic_pointer_cast<UsageFormatter>(command.get_formatter())) {
        formatter->usages[&command] = std::move(usage);
    }
}

void setup_common(CLI::App& app, std::string_view tool) {
    app.formatter(std::make_shared<UsageFormatter>());
    app.set_version_flag("--version", version_text(tool), "Print the version and exit");
    app.add_option_function<std::string>(
           "--log-level",
           [](const std::string& name) {
               auto level = ci::log::parse_level(name);
               if (!level) {
                   throw CLI::ValidationError("--log-level", level.error().message);
               }
               ci::log::set_level(*level);
           },
           "Least severe messages to print: trace, debug, info, warn, error, off")
        ->default_str("info")
        ->envname("CI_LOG_LEVEL");
}

namespace {

// "unknown command 'NAME'" and the commands there are, when the first word that is not an
// option names no subcommand (CLI11 itself only says that a subcommand is required).
bool explain_unknown_command(const CLI::App& app) {
    if (!app.get_subcommands().empty()) {
        return false;
    }
    const auto extra = app.remaining();
    if (extra.empty() || extra.front().starts_with('-')) {
        return false;
    }
    std::string names;
    std::vector<std::string_view> candidates;
    for (const CLI::App* command : app.get_subcommands({})) {
        names += (names.empty() ? "" : ", ") + command->get_name();
        candidates.emplace_back(command->get_name());
    }
    const auto suggestion = closest_match(extra.front(), candidates);
    std::fprintf(stderr,
                 "error: unknown command '%s'%s (commands: %s)\nRun with --help for more "
                 "information.\n",
                 ci::log::field(extra.front()).c_str(),
                 suggestion ? (": did you mean '" + std::string(*suggestion) + "'?").c_str() : "",
                 names.c_str());
    return true;
}

// The command that was parsed last (the app itself when no subcommand was given).
const CLI::App* innermost(const CLI::App& app) {
    const CLI::App* current = &app;
    for (;;) {
        const auto chosen = current->get_subcommands();
        if (chosen.empty()) {
            return current;
        }
        current = chosen.front();
    }
}

// "did you mean --config?" for each unknown --flag that is close to a flag of the command that
// was parsed (or of the commands above it), after CLI11's own "not expected" error.
void suggest_flags(const CLI::App& app, const std::vector<std::string>& extras) {
    std::vector<std::string> flags;
    for (const CLI::App* command = innermost(app); command != nullptr;
         command = command->get_parent()) {
        for (const CLI::Option* option : command->get_options()) {
            for (const auto& name : option->get_lnames()) {
                flags.push_back("--" + name);
            }
        }
    }
    const std::vector<std::string_view> candidates(flags.begin(), flags.end());
    for (const auto& extra : extras) {
        if (!extra.starts_with("--")) {
            continue;
        }
        const auto flag = std::string_view(extra).substr(0, extra.find('='));
        if (const auto suggestion = closest_match(flag, candidates)) {
            std::fprintf(stderr,
                         "%s: did you mean %s?\n",
                         ci::log::field(flag).c_str(),
                         std::string(*suggestion).c_str());
        }
    }
}

} // namespace

std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::RequiredError& error) {
        if (explain_unknown_command(app)) {
            return ExitUsage;
        }
        return app.exit(error) == 0 ? ExitOk : ExitUsage;
    } catch (const CLI::ExtrasError& error) {
        (void)app.exit(error);
        // What CLI11 did not take, from the command it was parsing (it stopped there).
        std::vector<std::string> extras;
        for (const CLI::App* command = innermost(app); command != nullptr;
             command = command->get_parent()) {
            const auto left = command->remaining();
            extras.insert(extras.end(), left.begin(), left.end());
        }
        suggest_flags(app, extras);
        return ExitUsage;
    } catch (const CLI::ParseError& error) {
        const int status = app.exit(error);
        return status == 0 ? ExitOk : ExitUsage;
    }
    return std::nullopt;
}

void print_error(const Error& error) {
    std::fprintf(stderr, "error: %s\n", ci::log::redact(error.to_string()).c_str());
}

bool initialize_library() {
    if (auto status = ci::initialize(); !status) {
        print_error(status.error());
        return false;
    }
    return true;
}

} // namespace ci::tools
