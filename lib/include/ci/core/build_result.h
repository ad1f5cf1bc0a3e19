#pragma once

/// \file
/// How a build or a step ended. Inside libci a result is this enum; it becomes text only where
/// it leaves the program (JSON, SQL, the worker protocol, logs), and text that names no result
/// is an error there, never a silent default.

#include <string_view>

#include <ci/core/error.h>

namespace ci {

/// The end of a build or of one of its steps.
enum class BuildResult {
    Success,   ///< every step that ran succeeded
    Warnings,  ///< a step with warn_on_failure (or flunk_on_failure: false) failed; nothing worse
    Failure,   ///< a step failed (non-zero exit, a signal, a timeout), or the merge conflicted
    Exception, ///< infrastructure: a checkout error, a step that could not start
    Cancelled, ///< stopped on request
    Retry,     ///< the worker was lost or the master stopped: the request runs again
};

/// The stable lower-case name: "success", "warnings", "failure", "exception", "cancelled",
/// "retry".
[[nodiscard]] std::string_view to_string(BuildResult result) noexcept;

/// The result `text` names (as to_string writes it). Fails with InvalidArgument quoting the
/// text and listing the names it accepts.
[[nodiscard]] Result<BuildResult> parse_build_result(std::string_view text);

/// The worse of two results, for a build whose steps ended differently:
/// cancelled > exception > failure > warnings > success (retry is worst of all: nothing counts).
[[nodiscard]] BuildResult worse(BuildResult a, BuildResult b) noexcept;

} // namespace ci
