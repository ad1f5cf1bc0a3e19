#pragma once

/// \file
/// Errors as values: every libci function that can fail returns ci::Result<T>.
///
/// An Error says what was being done to what ("PUT s3://bucket/key: 403 SignatureDoesNotMatch",
/// "config.yml:12:3: slaves.aws/centos-7.max_builds: expected an integer"), carries one
/// ErrorCode from a small set, and, where a lower layer reported one, its native code (a
/// CURLcode, a libgit2 error class, an errno). Outcomes such as an HTTP 404, a merge conflict or
/// a failed build step are not errors: they are values of the successful result.

#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace ci {

/// What kind of failure an Error is. Codes are grouped in ranges by module so that a caller can
/// branch on them without parsing messages. New codes are added at the end of their range.
enum class ErrorCode : int {
    // General (1-99)
    InvalidArgument = 1,  ///< A caller passed a value the function cannot accept.
    NotFound = 2,         ///< A named file, key or object does not exist.
    Io = 3,               ///< Reading or writing a file or descriptor failed (native: errno).
    Timeout = 4,          ///< An operation did not finish within its deadline.
    Cancelled = 5,        ///< The caller asked for the operation to stop.
    PermissionDenied = 6, ///< The OS refused access, or a file is more open than a secret allows.
    Unsupported = 7,      ///< The request is understood but libci does not implement it.
    Internal = 8,         ///< A broken invariant inside libci: a bug to report.
    Conflict = 9,         ///< What exists differs from what the caller would replace it with.

    // Configuration (100-199)
    ConfigSyntax = 100,  ///< The YAML or JSON text does not parse.
    ConfigInvalid = 101, ///< The text parses but violates the schema (see Error::message).

    // Processes (200-299)
    ProcessSpawn = 200, ///< A child process could not be started (native: errno).

    // HTTP and transport (300-399)
    Transport = 300, ///< The request never got a response (native: CURLcode).

    // AWS (400-499)
    AwsService = 400,     ///< AWS answered with an error document (code and request id in message).
    AwsCredentials = 401, ///< No credentials could be found or refreshed.

    // Git (500-599)
    Git = 500, ///< libgit2 reported an error (native: libgit2 error class).

    // Store (600-699)
    Store = 600, ///< The state database failed (native: SQLite result code).
};

/// The stable lower-case name of a code, e.g. "config-invalid". Never empty.
[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;

/// A failure: a code, a message naming the operation and its object, and an optional native code.
struct Error {
    ErrorCode code = ErrorCode::Internal;
    std::string message;
    std::optional<int> native;

    /// "message [code]", or "message [code, native N]" when a native code is present: the form
    /// the tools print after "error: ".
    [[nodiscard]] std::string to_string() const;

    /// A copy whose message is "context: message", for adding what the caller was doing.
    [[nodiscard]] Error with_context(std::string_view context) const;

    friend bool operator==(const Error&, const Error&) = default;
};

/// The result of an operation that yields a T or fails with an Error.
template <class T> using Result = std::expected<T, Error>;

/// The result of an operation that yields nothing but can fail.
using Status = Result<void>;

/// Builds the unexpected value to return from a function returning Result<T>:
/// `return ci::fail(ErrorCode::NotFound, "open config.yml");`
[[nodiscard]] inline std::unexpected<Error>
fail(ErrorCode code, std::string message, std::optional<int> native = std::nullopt) {
    return std::unexpected<Error>(Error{code, std::move(message), native});
}

/// Builds the unexpected value from an existing Error (to forward it, possibly with context).
[[nodiscard]] inline std::unexpected<Error> fail(Error error) {
    return std::unexpected<Error>(std::move(error));
}

} // namespace ci
