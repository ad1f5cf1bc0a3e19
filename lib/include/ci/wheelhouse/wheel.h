#pragma once

/// \file
/// Names and versions of Python wheels, as the wheelhouse index needs them: PEP 427 file names,
/// PEP 503 project-name normalization and PEP 440 versions with their ordering. Pure functions.

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <ci/core/error.h>

namespace ci::wheelhouse {

/// A PEP 440 version, parsed into its parts (alternate spellings accepted and normalized:
/// "1.0-alpha.1" is 1.0a1, "1.0-1" is 1.0.post1, a leading "v" is dropped).
struct Version {
    enum class PreKind { Alpha, Beta, Candidate };
    struct Pre {
        PreKind kind;
        std::uint64_t number;
        friend bool operator==(const Pre&, const Pre&) = default;
    };
    using LocalSegment = std::variant<std::uint64_t, std::string>;

    std::uint64_t epoch = 0;
    std::vector<std::uint64_t> release; ///< at least one number
    std::optional<Pre> pre;
    std::optional<std::uint64_t> post;
    std::optional<std::uint64_t> dev;
    std::vector<LocalSegment> local; ///< lower-cased; empty: none

    /// The normalized form: "1!2.0a1.post3.dev4+ubuntu.1".
    [[nodiscard]] std::string to_string() const;

    /// PEP 440 ordering: trailing zeros of the release do not count (1.0 == 1.0.0); a
    /// development release of a final release sorts before its pre-releases; a version with a
    /// local label sorts after the same version without one.
    friend std::strong_ordering operator<=>(const Version& a, const Version& b);
    friend bool operator==(const Version& a, const Version& b) {
        return (a <=> b) == std::strong_ordering::equal;
    }
};

/// Parses a PEP 440 version. Fails with InvalidArgument, naming the text.
[[nodiscard]] Result<Version> parse_version(std::string_view text);

/// The parts of a wheel's file name (PEP 427):
/// {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
struct WheelName {
    std::string distribution; ///< as written in the file name (e.g. "Flocker" or "zope_interface")
    Version version;
    std::string version_text; ///< as written
    std::string build;        ///< optional build tag, starting with a digit; empty: none
    std::string python;       ///< e.g. "py2.py3"
    std::string abi;          ///< e.g. "none"
    std::string platform;     ///< e.g. "any", "manylinux_2_17_x86_64"
};

/// Parses a wheel file name (the last path component). Fails with InvalidArgument saying what
/// is wrong: not ending in ".whl", not 5 or 6 dash-separated parts, an invalid version, a build
/// tag not starting with a digit, characters outside [A-Za-z0-9_.] in a part.
[[nodiscard]] Result<WheelName> parse_wheel_name(std::string_view file_name);

/// PEP 503 normalization: runs of '-', '_' and '.' become one '-', lower-cased.
[[nodiscard]] std::string normalize_project_name(std::string_view name);

} // namespace ci::wheelhouse
