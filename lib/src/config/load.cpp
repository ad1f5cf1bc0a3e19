#include "ci/config/load.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iterator>
#include <regex>
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

namespace {

bool is_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
}

bool equals_ignoring_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

// "git@host" -> "host", "user:token@host" -> "host".
std::string_view without_user_info(std::string_view authority) {
    const auto at = authority.rfind('@');
    return at == std::string_view::npos ? authority : authority.substr(at + 1);
}

} // namespace

bool is_release_tag(std::string_view name) {
    static const std::regex release(release_tag_regex.begin(), release_tag_regex.end());
    return std::regex_match(name.begin(), name.end(), release);
}

bool is_github_repository_name(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) {
        return false;
    }
    const auto owner = text.substr(0, slash);
    const auto repo = text.substr(slash + 1);
    return std::ranges::all_of(owner, is_name_char) && std::ranges::all_of(repo, is_name_char) &&
           repo != "." && repo != "..";
}

std::string github_repository(const Repository& repository) {
    if (!repository.github.empty()) {
        return repository.github;
    }
    std::string_view url = repository.url;
    std::string_view host;
    std::string_view path;
    if (const auto scheme = url.find("://"); scheme != std::string_view::npos) {
        // "scheme://[user-info@]host[:port]/OWNER/REPO"
        url.remove_prefix(scheme + 3);
        const auto slash = url.find('/');
        if (slash == std::string_view::npos) {
            return {};
        }
        host = without_user_info(url.substr(0, slash));
        host = host.substr(0, host.find(':')); // a port
        path = url.substr(slash + 1);
    } else {
        // scp-like: "[user@]host:OWNER/REPO"
        const auto colon = url.find(':');
        if (colon == std::string_view::npos) {
            return {};
        }
        host = without_user_info(url.substr(0, colon));
        path = url.substr(colon + 1);
    }
    if (!equals_ignoring_case(host, "github.com") &&
        !equals_ignoring_case(host, "www.github.com")) {
        return {};
    }
    while (path.ends_with('/')) {
        path.remove_suffix(1);
    }
    if (path.ends_with(".git")) {
        path.remove_suffix(4);
    }
    if (!is_github_repository_name(path)) {
        return {};
    }
    return std::string(path);
}

} // namespace ci::config

namespace ci::config {

std::string ec2_endpoint_url(const Aws& aws) {
    if (!aws.endpoint_url.empty()) {
        return aws.endpoint_url;
    }
    for (const char* name : {"AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"}) {
        if (const char* value = std::getenv(name); value != nullptr && *value != '\0') {
            return value;
        }
    }
    return {};
}

} // namespace ci::config
