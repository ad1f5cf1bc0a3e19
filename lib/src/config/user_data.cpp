#include "ci/config/user_data.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "config/file.h"

namespace ci::config {

namespace {

constexpr std::array<std::string_view, 8> known_placeholders = {
    "master",
    "master_host",
    "worker_port",
    "master_fingerprint",
    "worker_name",
    "worker_token",
    "class",
    "unreachable_timeout",
};

std::string known_list() {
    std::string out;
    for (const auto name : known_placeholders) {
        out += out.empty() ? "" : ", ";
        out += fmt::format("{{{{{}}}}}", name);
    }
    return out;
}

// "LINE:COLUMN" (1-based) of byte `offset` of `text`.
std::string position(std::string_view text, std::size_t offset) {
    const auto before = text.substr(0, offset);
    const auto line = 1 + std::ranges::count(before, '\n');
    const auto line_start = before.rfind('\n');
    const auto column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
    return fmt::format("{}:{}", line, column);
}

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && text.front() == ' ') {
        text.remove_prefix(1);
    }
    while (!text.empty() && text.back() == ' ') {
        text.remove_suffix(1);
    }
    return text;
}

// Walks `text`: literal runs go to `literal`, each placeholder's name (checked to be known) to
// `placeholder`.
template <class Literal, class Placeholder>
Status walk(std::string_view text, Literal&& literal, Placeholder&& placeholder) {
    std::size_t at = 0;
    while (at < text.size()) {
        const auto open = text.find("{{", at);
        if (open == std::string_view::npos) {
            literal(text.substr(at));
            break;
        }
        literal(text.substr(at, open - at));
        const auto close = text.find("}}", open + 2);
        const auto newline = text.find('\n', open);
        if (close == std::string_view::npos || close > newline) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("{}: a placeholder without its closing }}}} on the same line "
                                    "(every {{{{ opens one: {})",
                                    position(text, open),
                                    known_list()));
        }
        const auto name = trimmed(text.substr(open + 2, close - open - 2));
        if (std::ranges::find(known_placeholders, name) == known_placeholders.end()) {
            const auto shown =
                name.size() > 40 ? std::string(name.substr(0, 40)) + "..." : std::string(name);
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("{}: unknown placeholder {{{{{}}}}} (known: {})",
                                    position(text, open),
                                    shown,
                                    known_list()));
        }
        placeholder(name);
        at = close + 2;
    }
    return {};
}

// A character that could end the YAML scalar or shell word a value is pasted into.
bool refused_in_value(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f || c == '"' || c == '\'' || c == '\\' || c == '$' || c == '`';
}

Status check_value(std::string_view name, std::string_view value) {
    if (std::ranges::any_of(value, refused_in_value)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("user data: the value of {{{{{}}}}} holds a control character, a "
                                "quote, a backslash, '$' or a backquote",
                                name));
    }
    return {};
}

} // namespace

Status check_user_data_template(std::string_view text) {
    return walk(
        text, [](std::string_view) {}, [](std::string_view) {});
}

Result<std::string> render_user_data(std::string_view text, const UserDataValues& values) {
    const std::string host = values.master_host.find(':') != std::string::npos
                                 ? "[" + values.master_host + "]"
                                 : values.master_host;
    const std::array<std::pair<std::string_view, std::string>, known_placeholders.size()> filled = {
        {
            {"master", fmt::format("{}:{}", host, values.worker_port)},
            {"master_host", values.master_host},
            {"worker_port", std::to_string(values.worker_port)},
            {"master_fingerprint", values.master_fingerprint},
            {"worker_name", values.worker_name},
            {"worker_token", values.worker_token},
            {"class", values.worker_class},
            {"unreachable_timeout", std::to_string(values.unreachable_timeout.count())},
        }};
    for (const auto& [name, value] : filled) {
        if (auto status = check_value(name, value); !status) {
            return fail(status.error());
        }
    }
    std::string out;
    out.reserve(text.size() + 256);
    auto status = walk(
        text,
        [&](std::string_view literal) { out += literal; },
        [&](std::string_view name) {
            out += std::ranges::find(filled, name, [](const auto& p) { return p.first; })->second;
        });
    if (!status) {
        return fail(status.error());
    }
    return out;
}

Result<std::string> read_user_data_template(const Ec2Workers& worker_class) {
    if (worker_class.user_data_template.empty()) {
        return std::string(default_user_data_template());
    }
    // EC2 takes at most 16 KiB of user data (before base64): a longer template cannot launch.
    constexpr std::size_t max_user_data = std::size_t{16} * 1024;
    auto text = detail::read_text_file(
        worker_class.user_data_template, "read user data template", max_user_data + 1);
    if (text && text->size() > max_user_data) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("user data template {}: more than {} bytes (EC2's limit)",
                                worker_class.user_data_template,
                                max_user_data));
    }
    return text;
}

Status check_user_data_templates(const Config& config) {
    for (const auto& [name, worker_class] : config.slaves) {
        const auto* ec2 = std::get_if<Ec2Workers>(&worker_class);
        if (ec2 == nullptr) {
            continue;
        }
        auto text = read_user_data_template(*ec2);
        if (!text) {
            return fail(text.error().code,
                        fmt::format("slaves.{}.user_data_template: {}", name, text.error().message),
                        text.error().native);
        }
        if (auto status = check_user_data_template(*text); !status) {
            const std::string file = ec2->user_data_template.empty()
                                         ? "(default user data template)"
                                         : ec2->user_data_template;
            return fail(
                ErrorCode::InvalidArgument,
                fmt::format(
                    "{}:{} (slaves.{}.user_data_template)", file, status.error().message, name));
        }
    }
    return {};
}

} // namespace ci::config
