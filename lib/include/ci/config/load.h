#pragma once

/// \file
/// Reading a configuration: from `config.yml`, from the JSON form a master receives, and from the
/// environment variable or 0600 file that carries that JSON.
///
/// Checking never stops at the first problem: every error and warning is collected as a
/// Diagnostic naming the origin (file), line, column and key path, e.g.
/// `config.yml:12:3: slaves.aws/centos-7.max_builds: expected an integer, got "two"`.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>
#include <ci/core/suggest.h>

namespace ci::config {

/// Limits on a configuration text (both forms), checked before anything else reads it; a text
/// beyond one gets an error naming the limit, never a crash or an unbounded wait.
/// The largest config file or $LIBCI_CONFIG text, in bytes (4 MiB): reading stops there, so
/// `check-config /dev/zero` ends.
inline constexpr std::size_t max_config_size = std::size_t{4} << 20U;
/// The deepest nesting of mappings and lists (YAML) or objects and arrays (JSON), counted
/// through YAML aliases. A config nests 6 deep at most (a step's env).
inline constexpr std::size_t max_config_depth = 64;
/// The most values (scalars, mappings, lists) a YAML text may stand for with its aliases
/// expanded: `&a [x, x]`, `&b [*a, *a]`, ... doubles at each step ("billion laughs").
inline constexpr std::size_t max_config_values = 1'000'000;
/// Names longer than this get no "did you mean" (every key of the schema is shorter); the
/// comparison uses memory in proportion to the names, not their product.
using ci::max_suggestion_length;

/// One finding about a configuration text.
struct Diagnostic {
    enum class Severity { Warning, Error };
    Severity severity = Severity::Error;
    std::string origin;   ///< the file name, or e.g. "$LIBCI_CONFIG"
    int line = 0;         ///< 1-based; 0 when unknown (JSON has no positions after parsing)
    int column = 0;       ///< 1-based; 0 when unknown
    std::string key_path; ///< e.g. "builders.flocker.steps[0].run"; empty for the whole text
    std::string message;  ///< what is wrong, with a "did you mean" where one fits

    /// "origin:line:column: key.path: message", with "warning: " before the message for a
    /// warning; positions and path are left out when unknown.
    [[nodiscard]] std::string to_string() const;
    friend bool operator==(const Diagnostic&, const Diagnostic&) = default;
};

/// The outcome of checking a configuration text: the Config when there were no errors, and every
/// diagnostic (warnings too) in the order of the text.
struct CheckedConfig {
    std::optional<Config> config;
    std::vector<Diagnostic> diagnostics;

    /// True when `config` is set, i.e. no diagnostic is an error.
    [[nodiscard]] bool ok() const noexcept { return config.has_value(); }
    /// The diagnostics that are errors.
    [[nodiscard]] std::vector<Diagnostic> errors() const;
    /// The diagnostics that are warnings.
    [[nodiscard]] std::vector<Diagnostic> warnings() const;
    /// The Config, or one Error (ConfigSyntax when the text does not parse, else ConfigInvalid)
    /// whose message lists every error, one per line.
    [[nodiscard]] Result<Config> to_result() &&;
};

/// Checks YAML text. `origin` names it in diagnostics (usually the file's path). Never throws.
/// A text longer than max_config_size, holding a NUL byte or invalid UTF-8, nested deeper than
/// max_config_depth or standing for more than max_config_values is refused with one error at
/// the place it goes wrong.
[[nodiscard]] CheckedConfig parse_config(std::string_view yaml, std::string_view origin);

/// Reads and checks a YAML file. Fails (NotFound, PermissionDenied, Io) only when the file cannot
/// be read; problems in its content are diagnostics. Reads at most max_config_size + 1 bytes.
/// Relative paths of other files the config names (`slaves.<class>.user_data_template`,
/// `slaves.<class>.worker_files` sources) are made relative to the file's directory; each
/// worker_files source is also read, and one that cannot be read or is over a size cap
/// (ci/config/worker_files.h) is an error at its line.
[[nodiscard]] Result<CheckedConfig> load_config(const std::filesystem::path& path);

/// A Diagnostic (an error) for a problem found in YAML file `path` after its check, e.g. by
/// ci-deploy's plan: `key_path` ("deploy.image") and `message`, placed at the key of `key_path`
/// in the file, or at the deepest of its parents there (line 1, column 1 when none is). No
/// position when the file cannot be read or parsed again, or is larger than max_config_size.
[[nodiscard]] Diagnostic
locate(const std::filesystem::path& path, std::string key_path, std::string message);

/// The JSON form of `config`: every key as in the YAML file, defaults written out, so that
/// parse_config_json(to_json(c)) gives back c. It holds secrets: keep it out of logs.
[[nodiscard]] std::string to_json(const Config& config);

/// Checks the JSON form (as written by to_json, or by hand: the same keys and rules as the YAML
/// file apply). Line and column of diagnostics are known only for JSON syntax errors (and the
/// limits of parse_config, which apply here too: nesting is that of objects and arrays). A key
/// written twice in one object is an error naming it.
[[nodiscard]] CheckedConfig parse_config_json(std::string_view text, std::string_view origin);

/// The environment variable that carries a master's config as JSON.
inline constexpr std::string_view config_environment_variable = "LIBCI_CONFIG";

/// Reads the config from the environment variable `name` and removes the variable from this
/// process's environment, so that no child process inherits it. Returns nullopt when the variable
/// is not set; fails with ConfigSyntax/ConfigInvalid (every error listed) when its JSON is bad.
/// Not thread-safe (it changes the environment): call it at start, before threads exist.
[[nodiscard]] Result<std::optional<Config>>
take_config_from_environment(std::string_view name = config_environment_variable);

/// Writes the JSON form to `path` with mode 0600, atomically (a temporary file in the same
/// directory, then rename), replacing any earlier file. Fails with Io.
[[nodiscard]] Status write_config_json_file(const std::filesystem::path& path,
                                            const Config& config);

/// Reads a JSON config file. Refuses (PermissionDenied) a file that its group or others can
/// read or write, since it holds secrets; fails like load_config otherwise, and with
/// ConfigSyntax/ConfigInvalid (every error listed) when the JSON is bad.
[[nodiscard]] Result<Config> load_config_json_file(const std::filesystem::path& path);

} // namespace ci::config
