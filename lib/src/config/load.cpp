#include "ci/config/load.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iterator>
#include <regex>
#include <sstream>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
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

namespace {

// Thrown by ShapeCheck to stop the parser at the first node beyond a limit.
struct Beyond {
    YAML::Mark mark;
    std::string message;
};

// The shape of a YAML document from the parser's events, before any tree is built: the nesting
// depth and the number of values, both counted with every alias expanded (an alias stands for
// its anchor's whole node). Linear in the text, whatever its aliases: an anchor's depth and size
// are computed once, when its node ends.
class ShapeCheck : public YAML::EventHandler {
public:
    void OnDocumentStart(const YAML::Mark& /*mark*/) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        leaf(mark, anchor, 1, 0);
    }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
        const auto found = anchors_.find(anchor);
        if (found == anchors_.end()) {
            // Its node has not ended: the alias is inside the node it names (a cycle).
            throw Beyond{mark, "an alias inside the node it refers to"};
        }
        leaf(mark, 0, found->second.values, found->second.depth);
    }
    void OnScalar(const YAML::Mark& mark,
                  const std::string& /*tag*/,
                  YAML::anchor_t anchor,
                  const std::string& /*value*/) override {
        leaf(mark, anchor, 1, 0);
    }
    void OnSequenceStart(const YAML::Mark& mark,
                         const std::string& /*tag*/,
                         YAML::anchor_t anchor,
                         YAML::EmitterStyle::value /*style*/) override {
        open(mark, anchor);
    }
    void OnSequenceEnd() override { close(); }
    void OnMapStart(const YAML::Mark& mark,
                    const std::string& /*tag*/,
                    YAML::anchor_t anchor,
                    YAML::EmitterStyle::value /*style*/) override {
        open(mark, anchor);
    }
    void OnMapEnd() override { close(); }

private:
    // A node's values (itself and everything in it) and depth (levels of mappings and lists,
    // itself included: 0 for a scalar). While a node is open, `depth` is its children's deepest.
    struct Shape {
        std::size_t values = 0;
        std::size_t depth = 0;
    };
    struct Open {
        YAML::anchor_t anchor;
        Shape shape;
    };

    void count(const YAML::Mark& mark, std::size_t values, std::size_t depth) {
        total_ += values;
        if (total_ > max_config_values) {
            throw Beyond{
                mark, fmt::format("more than {} values with aliases expanded", max_config_values)};
        }
        if (open_.size() + depth > max_config_depth) {
            throw Beyond{mark,
                         fmt::format("nested deeper than {} mappings and lists", max_config_depth)};
        }
        if (!open_.empty()) {
            Shape& parent = open_.back().shape;
            parent.values += values;
            parent.depth = std::max(parent.depth, depth);
        }
    }
    void
    leaf(const YAML::Mark& mark, YAML::anchor_t anchor, std::size_t values, std::size_t depth) {
        count(mark, values, depth);
        if (anchor != YAML::NullAnchor) {
            anchors_[anchor] = Shape{values, depth};
        }
    }
    void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
        // The node itself: one value, one level (its contents are counted as they come).
        count(mark, 1, 1);
        open_.push_back(Open{anchor, Shape{1, 0}});
    }
    void close() {
        if (open_.empty()) {
            return;
        }
        const Open done = open_.back();
        open_.pop_back();
        if (!open_.empty()) {
            // Its own value and level were counted when it opened; its contents now.
            Shape& parent = open_.back().shape;
            parent.values += done.shape.values - 1;
            parent.depth = std::max(parent.depth, done.shape.depth + 1);
        }
        if (done.anchor != YAML::NullAnchor) {
            anchors_[done.anchor] = Shape{done.shape.values, done.shape.depth + 1};
        }
    }

    std::vector<Open> open_;
    std::unordered_map<YAML::anchor_t, Shape> anchors_;
    std::size_t total_ = 0;
};

Diagnostic error_at(std::string_view origin, const YAML::Mark& mark, std::string message) {
    Diagnostic diagnostic;
    diagnostic.origin = std::string(origin);
    if (mark.line >= 0) {
        diagnostic.line = mark.line + 1;
        diagnostic.column = mark.column + 1;
    }
    diagnostic.message = std::move(message);
    return diagnostic;
}

} // namespace

namespace {

// parse_config, with the directory of the file the text is from (nullptr: none; see
// detail::check_document).
CheckedConfig parse_yaml(std::string_view yaml,
                         std::string_view origin,
                         const std::filesystem::path* base_directory) {
    CheckedConfig checked;
    if (auto refused = detail::refuse_text(yaml, origin)) {
        checked.diagnostics.push_back(std::move(*refused));
        return checked;
    }
    YAML::Node root;
    try {
        // The shape first, from the parser's events; then the tree (the first document, as
        // YAML::Load reads).
        std::istringstream stream{std::string(yaml)};
        YAML::Parser parser(stream);
        ShapeCheck shape;
        parser.HandleNextDocument(shape);
        root = YAML::Load(std::string(yaml));
    } catch (const Beyond& beyond) {
        checked.diagnostics.push_back(error_at(origin, beyond.mark, beyond.message));
        return checked;
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
    checked.config =
        detail::check_document(root, std::string(origin), checked.diagnostics, base_directory);
    return checked;
}

} // namespace

CheckedConfig parse_config(std::string_view yaml, std::string_view origin) {
    return parse_yaml(yaml, origin, nullptr);
}

Result<CheckedConfig> load_config(const std::filesystem::path& path) {
    auto text = detail::read_text_file(path, "read config", max_config_size + 1);
    if (!text) {
        return fail(text.error());
    }
    // Files a config names are relative to the config file's directory (worker_files: resolved
    // and read by the check).
    const auto directory = path.parent_path();
    auto checked = parse_yaml(*text, path.string(), &directory);
    if (checked.config) {
        for (auto& [name, worker_class] : checked.config->slaves) {
            auto* ec2 = std::get_if<Ec2Workers>(&worker_class);
            if (ec2 != nullptr && !ec2->user_data_template.empty() &&
                std::filesystem::path(ec2->user_data_template).is_relative()) {
                ec2->user_data_template =
                    (path.parent_path() / ec2->user_data_template).lexically_normal().string();
            }
        }
    }
    return checked;
}

Diagnostic locate(const std::filesystem::path& path, std::string key_path, std::string message) {
    Diagnostic diagnostic;
    diagnostic.origin = path.string();
    diagnostic.message = std::move(message);
    const auto text = detail::read_text_file(path, "read config", max_config_size + 1);
    if (text && text->size() <= max_config_size) {
        try {
            YAML::Node node = YAML::Load(*text);
            diagnostic.line = 1;
            diagnostic.column = 1;
            std::string_view rest = key_path;
            while (!rest.empty() && node.IsMap()) {
                const auto dot = rest.find('.');
                const auto key = rest.substr(0, dot);
                rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
                YAML::Node next;
                for (const auto& entry : node) {
                    if (entry.first.IsScalar() && entry.first.Scalar() == key) {
                        const YAML::Mark mark = entry.first.Mark();
                        diagnostic.line = mark.line + 1;
                        diagnostic.column = mark.column + 1;
                        next = entry.second;
                        break;
                    }
                }
                if (!next.IsDefined()) {
                    break;
                }
                node = next;
            }
        } catch (const YAML::Exception&) {
            diagnostic.line = 0;
            diagnostic.column = 0;
        }
    }
    diagnostic.key_path = std::move(key_path);
    return diagnostic;
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
        // Not the password, but what an offline guesser starts from.
        for (const auto& user : config.auth->users) {
            add(user.password_hash);
        }
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
