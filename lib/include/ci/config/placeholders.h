#pragma once

/// \file
/// Placeholders in a step's `run` (argv form), `env` values and `workdir`, filled in on the
/// worker just before the step starts:
///  - `${prop:NAME}`: the build property NAME (given when the build was forced, or set by an
///    earlier step's `set_property`);
///  - `${branch}`: the branch (or tag) built; `${revision}`: the commit checked out;
///    `${build_id}`: the build's id;
///  - `$${` is a literal `${`; any other `$` is itself.
/// Filling in never adds a shell: each argv element stays one argument, whatever its value. A
/// shell command (`run` written as a string: {"/bin/sh", "-c", text}) is left as it is, since
/// a value pasted into shell text would be shell code, and `${VAR}` there is the shell's own.
/// Pure: no I/O.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci::config {

/// The longest property name, and the characters a name may use: [A-Za-z0-9_.-].
inline constexpr std::size_t max_property_name = 64;

/// True for a property name of 1 to max_property_name characters of [A-Za-z0-9_.-].
[[nodiscard]] bool valid_property_name(std::string_view name) noexcept;

/// True for {"/bin/sh", "-c", text}: a shell command, whose placeholders are not filled in.
[[nodiscard]] bool is_shell_command(const std::vector<std::string>& argv) noexcept;

/// True when `text` holds one of the placeholders above, well formed (`${branch}`,
/// `${prop:x}`, ...): what a shell command probably meant as one.
[[nodiscard]] bool mentions_placeholders(std::string_view text);

/// True when `text` holds a placeholder (`${` not written as `$${`).
[[nodiscard]] bool has_placeholders(std::string_view text) noexcept;

/// Checks the placeholders of `text`: each `${` closed by `}`, naming `branch`, `revision`,
/// `build_id` or `prop:NAME` with a valid NAME. Fails with InvalidArgument saying which one is
/// wrong and why (the config checker puts the key path in front).
[[nodiscard]] Status check_placeholders(std::string_view text);

/// What placeholders stand for in one step.
struct PlaceholderValues {
    std::string branch;
    std::string revision;
    std::int64_t build_id = 0;
    std::map<std::string, std::string> properties;
};

/// `text` with its placeholders filled in. Fails with InvalidArgument for a malformed
/// placeholder (as check_placeholders) or a property that `values` does not have, naming it.
[[nodiscard]] Result<std::string> fill_placeholders(std::string_view text,
                                                    const PlaceholderValues& values);

} // namespace ci::config
