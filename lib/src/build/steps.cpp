#include "build/steps.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "core/utf8.h"

namespace ci::build::detail {

namespace {

bool alpha(char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

bool alnum(char c) noexcept {
    return alpha(c) || (c >= '0' && c <= '9');
}

// Characters a POSIX shell reads as themselves in an unquoted word.
bool shell_plain(char c) noexcept {
    return alnum(c) || std::string_view("%+,-./:=@_").find(c) != std::string_view::npos;
}

std::string shell_quote(std::string_view arg) {
    if (!arg.empty() && std::ranges::all_of(arg, shell_plain)) {
        return std::string(arg);
    }
    std::string out = "'";
    for (const char c : arg) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    return out + "'";
}

constexpr std::size_t max_command_text = 200;

constexpr std::array<std::string_view, 11> runner_variables = {
    "CI_BUILD_ID",
    "CI_BUILDER",
    "CI_REPOSITORY",
    "CI_BRANCH",
    "CI_BRANCH_TIP",
    "CI_TARGET_BRANCH",
    "CI_TARGET_TIP",
    "CI_MERGE_COMMIT",
    "CI_REVISION",
    "CI_WORKDIR",
    "CI_PROPERTIES",
};

} // namespace

bool valid_variable_name(std::string_view name) noexcept {
    if (name.empty() || (!alpha(name.front()) && name.front() != '_')) {
        return false;
    }
    return std::ranges::all_of(name, [](char c) { return alnum(c) || c == '_'; });
}

std::string property_variable(std::string_view name) {
    std::string out = "CI_PROP_";
    for (const char c : name) {
        out += alnum(c) ? c : '_';
    }
    return out;
}

bool reserved_variable(std::string_view name) noexcept {
    return name.starts_with("CI_PROP_") ||
           std::ranges::find(runner_variables, name) != runner_variables.end();
}

PropertyLines parse_properties(std::string_view text) {
    PropertyLines out;
    std::size_t number = 0;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        ++number;
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            continue;
        }
        const auto equals = line.find('=');
        if (equals == std::string_view::npos) {
            out.problems.push_back(fmt::format("line {}: not KEY=VALUE; ignored", number));
            continue;
        }
        const std::string_view key = line.substr(0, equals);
        if (!valid_variable_name(key)) {
            // The key may be anything the step printed; show only that it is not a name.
            out.problems.push_back(fmt::format(
                "line {}: the key is not a variable name ([A-Za-z_][A-Za-z0-9_]*); ignored",
                number));
            continue;
        }
        if (reserved_variable(key)) {
            out.problems.push_back(
                fmt::format("line {}: {} is set by the runner; ignored", number, key));
            continue;
        }
        out.values[std::string(key)] = std::string(line.substr(equals + 1));
    }
    return out;
}

std::string duration_text(std::chrono::seconds duration) {
    const auto total = duration.count();
    const auto hours = total / 3600;
    const auto minutes = total % 3600 / 60;
    const auto seconds = total % 60;
    std::string out;
    if (hours != 0) {
        out += fmt::format("{}h", hours);
    }
    if (minutes != 0) {
        out += fmt::format("{}m", minutes);
    }
    if (seconds != 0 || out.empty()) {
        out += fmt::format("{}s", seconds);
    }
    return out;
}

std::string command_text(const std::vector<std::string>& argv) {
    std::string out;
    if (argv.size() == 3 && (argv[0] == "/bin/sh" || argv[0] == "sh") && argv[1] == "-c") {
        const std::string_view script = argv[2];
        const auto newline = script.find('\n');
        out = std::string(script.substr(0, newline));
        if (newline != std::string_view::npos &&
            script.find_first_not_of(" \t\n", newline) != std::string_view::npos) {
            out += " ...";
        }
    } else {
        for (const auto& arg : argv) {
            if (!out.empty()) {
                out += ' ';
            }
            out += shell_quote(arg);
        }
    }
    if (out.size() > max_command_text) {
        out.resize(max_command_text);
        out += " ...";
    }
    return out;
}

std::string header_line(const std::vector<std::string>& argv,
                        std::string_view workdir,
                        std::optional<std::chrono::seconds> timeout) {
    std::vector<std::string> notes;
    if (!workdir.empty() && workdir != ".") {
        notes.push_back(fmt::format("in {}{}", workdir, workdir.ends_with('/') ? "" : "/"));
    }
    if (timeout) {
        notes.push_back("timeout " + duration_text(*timeout));
    }
    std::string out = "$ " + command_text(argv);
    if (!notes.empty()) {
        out += "  (";
        for (std::size_t i = 0; i < notes.size(); ++i) {
            out += (i == 0 ? "" : ", ") + notes[i];
        }
        out += ")";
    }
    return out + "\n";
}

Result<std::filesystem::path> resolve_workdir(const std::filesystem::path& root,
                                              std::string_view workdir) {
    const std::filesystem::path relative(workdir);
    if (relative.is_absolute()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("workdir {}: must be relative to the checkout", workdir));
    }
    const auto normal = relative.lexically_normal();
    if (!normal.empty() && *normal.begin() == "..") {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("workdir {}: leaves the checkout", workdir));
    }
    if (normal.empty() || normal == ".") {
        return root;
    }
    return (root / normal).lexically_normal();
}

std::string directory_name(std::string_view builder) {
    std::string out;
    for (const char c : builder) {
        out += alnum(c) || c == '.' || c == '-' || c == '_' ? c : '_';
    }
    if (out.empty() || out == "." || out == "..") {
        out.insert(out.begin(), '_');
    }
    return out;
}

Result<std::string> property_value(std::string_view name, std::string_view captured) {
    if (captured.size() > max_property_value) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("set_property {}: the standard output is larger than {} KiB, "
                                "the most a property holds",
                                name,
                                max_property_value / 1024));
    }
    constexpr std::string_view space = " \t\r\n\v\f";
    const auto first = captured.find_first_not_of(space);
    if (first == std::string_view::npos) {
        return std::string();
    }
    const auto value = captured.substr(first, captured.find_last_not_of(space) - first + 1);
    if (value.find('\0') != std::string_view::npos) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("set_property {}: the standard output holds a NUL byte", name));
    }
    if (auto bad = first_invalid_utf8(value)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("set_property {}: the standard output is not valid UTF-8 (byte "
                                "{})",
                                name,
                                *bad));
    }
    return std::string(value);
}

std::string shown_value(std::string_view value) {
    const auto line = value.substr(0, std::min(value.find('\n'), std::size_t{200}));
    return line.size() < value.size() ? std::string(line) + " ..." : std::string(line);
}

} // namespace ci::build::detail
