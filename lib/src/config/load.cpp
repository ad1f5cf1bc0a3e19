#include "ci/config/load.h"

#include <algorithm>
#include <iterator>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "config/file.h"
#include "config/schema.h"

namespace ci::config {

std::string Diagnostic::to_string() const {
    std::string text = origin;
    if (line > 0) {
        text += fmt::format(":{}:{}", line, column);
    }
    text += ": ";
    if (severity == Severity::Warning) {
        text += "warning: ";
    }
    if (!key_path.empty()) {
        text += key_path + ": ";
    }
    return text + message;
}

namespace {

std::vector<Diagnostic> with_severity(const std::vector<Diagnostic>& diagnostics,
                                      Diagnostic::Severity severity) {
    std::vector<Diagnostic> out;
    std::ranges::copy_if(diagnostics, std::back_inserter(out), [&](const Diagnostic& d) {
        return d.severity == severity;
    });
    return out;
}

} // namespace

std::vector<Diagnostic> CheckedConfig::errors() const {
    return with_severity(diagnostics, Diagnostic::Severity::Error);
}

std::vector<Diagnostic> CheckedConfig::warnings() const {
    return with_severity(diagnostics, Diagnostic::Severity::Warning);
}

Result<Config> CheckedConfig::to_result() && {
    if (config) {
        return std::move(*config);
    }
    std::string message;
    bool syntax = false;
    for (const auto& diagnostic : errors()) {
        if (!message.empty()) {
            message += '\n';
        }
        message += diagnostic.to_string();
        syntax = syntax || diagnostic.key_path.empty();
    }
    if (message.empty()) {
        message = "invalid configuration";
    }
    return fail(syntax ? ErrorCode::ConfigSyntax : ErrorCode::ConfigInvalid, std::move(message));
}

CheckedConfig parse_config(std::string_view yaml, std::string_view origin) {
    CheckedConfig checked;
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml));
    } catch (const YAML::ParserException& error) {
        Diagnostic diagnostic;
        diagnostic.origin = std::string(origin);
        if (error.mark.line >= 0) {
            diagnostic.line = error.mark.line + 1;
            diagnostic.column = error.mark.column + 1;
        }
        diagnostic.message = error.msg;
        checked.diagnostics.push_back(std::move(diagnostic));
        return checked;
    } catch (const YAML::Exception& error) {
        Diagnostic diagnostic;
        diagnostic.origin = std::string(origin);
        diagnostic.message = error.what();
        checked.diagnostics.push_back(std::move(diagnostic));
        return checked;
    }
    checked.config = detail::check_document(root, std::string(origin), checked.diagnostics);
    return checked;
}

Result<CheckedConfig> load_config(const std::filesystem::path& path) {
    auto text = detail::read_text_file(path, "read config");
    if (!text) {
        return fail(text.error());
    }
    return parse_config(*text, path.string());
}

std::vector<std::string> secrets(const Config& config) {
    std::vector<std::string> out;
    const auto add = [&](const std::string& value) {
        if (!value.empty()) {
            out.push_back(value);
        }
    };
    if (config.auth) {
        add(config.auth->password);
    }
    add(config.github.token);
    add(config.github.webhook_secret);
    if (config.zulip) {
        add(config.zulip->password);
    }
    add(config.aws.secret_identifier);
    for (const auto& [name, worker_class] : config.slaves) {
        if (const auto* fixed = std::get_if<StaticWorkers>(&worker_class)) {
            for (const auto& password : fixed->passwords) {
                add(password);
            }
        }
    }
    return out;
}

} // namespace ci::config
