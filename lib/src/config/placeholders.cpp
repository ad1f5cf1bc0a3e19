#include "ci/config/placeholders.h"

#include <algorithm>

#include <fmt/format.h>

namespace ci::config {

namespace {

// A placeholder's text shown in a message: at most 80 characters of it.
std::string shown(std::string_view text) {
    return text.size() > 80 ? std::string(text.substr(0, 80)) + "..." : std::string(text);
}

// Walks `text`, giving each literal run to `literal` and each placeholder's inside (between
// "${" and "}") to `placeholder`. Stops at the first failure of either, or at an unclosed "${".
template <class Literal, class Placeholder>
Status walk(std::string_view text, Literal&& literal, Placeholder&& placeholder) {
    std::size_t at = 0;
    while (at < text.size()) {
        const auto dollar = text.find('$', at);
        if (dollar == std::string_view::npos) {
            literal(text.substr(at));
            break;
        }
        literal(text.substr(at, dollar - at));
        if (text.substr(dollar).starts_with("$${")) {
            literal("${");
            at = dollar + 3;
        } else if (text.substr(dollar).starts_with("${")) {
            const auto close = text.find('}', dollar + 2);
            if (close == std::string_view::npos) {
                return fail(ErrorCode::InvalidArgument,
                            fmt::format("\"{}\": a placeholder without its closing '}}' (write "
                                        "$${{ for a literal ${{)",
                                        shown(text.substr(dollar))));
            }
            if (auto status = placeholder(text.substr(dollar + 2, close - dollar - 2)); !status) {
                return status;
            }
            at = close + 1;
        } else {
            literal("$");
            at = dollar + 1;
        }
    }
    return {};
}

Status check_one(std::string_view inside) {
    if (inside == "branch" || inside == "revision" || inside == "build_id") {
        return {};
    }
    if (inside.starts_with("prop:")) {
        const auto name = inside.substr(5);
        if (!valid_property_name(name)) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("\"${{{}}}\": a property name is 1 to {} characters of "
                                    "[A-Za-z0-9_.-]",
                                    shown(inside),
                                    max_property_name));
        }
        return {};
    }
    return fail(ErrorCode::InvalidArgument,
                fmt::format("\"${{{}}}\": unknown placeholder (known: ${{prop:NAME}}, ${{branch}}, "
                            "${{revision}}, ${{build_id}}; $${{ is a literal ${{)",
                            shown(inside)));
}

} // namespace

bool valid_property_name(std::string_view name) noexcept {
    return !name.empty() && name.size() <= max_property_name &&
           std::ranges::all_of(name, [](char c) {
               return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.' || c == '-';
           });
}

bool is_shell_command(const std::vector<std::string>& argv) noexcept {
    return argv.size() == 3 && argv[0] == "/bin/sh" && argv[1] == "-c";
}

bool mentions_placeholders(std::string_view text) {
    bool found = false;
    (void)walk(
        text,
        [](std::string_view) {},
        [&](std::string_view inside) -> Status {
            found = found || check_one(inside).has_value();
            return {};
        });
    return found;
}

bool has_placeholders(std::string_view text) noexcept {
    for (auto at = text.find("${"); at != std::string_view::npos; at = text.find("${", at + 2)) {
        if (at == 0 || text[at - 1] != '$') {
            return true;
        }
    }
    return false;
}

Status check_placeholders(std::string_view text) {
    return walk(
        text, [](std::string_view) {}, check_one);
}

Result<std::string> fill_placeholders(std::string_view text, const PlaceholderValues& values) {
    std::string out;
    out.reserve(text.size());
    auto status = walk(
        text,
        [&](std::string_view literal) { out += literal; },
        [&](std::string_view inside) -> Status {
            if (auto valid = check_one(inside); !valid) {
                return valid;
            }
            if (inside == "branch") {
                out += values.branch;
            } else if (inside == "revision") {
                out += values.revision;
            } else if (inside == "build_id") {
                out += std::to_string(values.build_id);
            } else {
                const auto name = inside.substr(5);
                const auto found = values.properties.find(std::string(name));
                if (found == values.properties.end()) {
                    return fail(ErrorCode::InvalidArgument,
                                fmt::format("\"${{prop:{}}}\": the build has no property \"{}\" "
                                            "(set one with set_property in an earlier step, or "
                                            "give it when forcing the build)",
                                            name,
                                            name));
                }
                out += found->second;
            }
            return {};
        });
    if (!status) {
        return fail(status.error());
    }
    return out;
}

} // namespace ci::config
