#pragma once

// Pure helpers of the build runner: step environments, the CI_PROPERTIES file format, the
// header line of a step's log and the check of a step's workdir. No I/O.

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci::build::detail {

// True for a name matching [A-Za-z_][A-Za-z0-9_]*.
[[nodiscard]] bool valid_variable_name(std::string_view name) noexcept;

// The variable a build property is given to steps as: CI_PROP_<name>, every character other
// than [A-Za-z0-9] replaced by '_'.
[[nodiscard]] std::string property_variable(std::string_view name);

// True for the variables the runner sets itself (CI_BUILD_ID, ..., CI_PROPERTIES, CI_PROP_*),
// which a step cannot replace through CI_PROPERTIES.
[[nodiscard]] bool reserved_variable(std::string_view name) noexcept;

// What a step wrote to its CI_PROPERTIES file.
struct PropertyLines {
    std::map<std::string, std::string> values; // the last value of each key wins
    // One line for each line that was ignored, naming its number and why; never its value.
    std::vector<std::string> problems;
};

// Parses `text` as KEY=VALUE lines. Empty lines are skipped; a final '\r' is dropped.
[[nodiscard]] PropertyLines parse_properties(std::string_view text);

// The largest value set_property takes (the step's standard output, before trimming).
inline constexpr std::size_t max_property_value = std::size_t{64} * 1024;

// A step's standard output `captured` as the value of property `name`: without leading and
// trailing white space. Fails with InvalidArgument naming the property when it is larger than
// max_property_value, holds a NUL byte (no argument can), or is not valid UTF-8.
[[nodiscard]] Result<std::string> property_value(std::string_view name, std::string_view captured);

// A property's value for a log line: its first line, at most 200 bytes, with " ..." when cut.
[[nodiscard]] std::string shown_value(std::string_view value);

// "30s", "5m", "1h30m", "1h", "0s".
[[nodiscard]] std::string duration_text(std::chrono::seconds duration);

// The command as a reader would type it: {"/bin/sh", "-c", text} is shown as text (its first
// line, with " ..." when there are more); other arguments are quoted when they need it. At
// most about 200 characters.
[[nodiscard]] std::string command_text(const std::vector<std::string>& argv);

// The first line of a step's log: "$ make test  (in build/, timeout 30m)".
[[nodiscard]] std::string header_line(const std::vector<std::string>& argv,
                                      std::string_view workdir,
                                      std::optional<std::chrono::seconds> timeout);

// `root`/`workdir`, lexically normalized. Fails with InvalidArgument for an absolute workdir
// or one that leaves `root` through "..".
[[nodiscard]] Result<std::filesystem::path> resolve_workdir(const std::filesystem::path& root,
                                                            std::string_view workdir);

// `builder` as a single path component: characters other than [A-Za-z0-9._-] become '_', and
// "", "." and ".." get a leading '_'.
[[nodiscard]] std::string directory_name(std::string_view builder);

} // namespace ci::build::detail
