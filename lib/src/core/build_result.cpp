#include "ci/core/build_result.h"

#include <array>

#include <fmt/format.h>

namespace ci {

namespace {

constexpr std::array all_results{BuildResult::Success,
                                 BuildResult::Warnings,
                                 BuildResult::Failure,
                                 BuildResult::Exception,
                                 BuildResult::Cancelled,
                                 BuildResult::Retry};

// How bad a result is, for worse(): higher is worse.
int severity(BuildResult result) noexcept {
    switch (result) {
    case BuildResult::Success:
        return 0;
    case BuildResult::Warnings:
        return 1;
    case BuildResult::Failure:
        return 2;
    case BuildResult::Exception:
        return 3;
    case BuildResult::Cancelled:
        return 4;
    case BuildResult::Retry:
        return 5;
    }
    return 5;
}

} // namespace

std::string_view to_string(BuildResult result) noexcept {
    switch (result) {
    case BuildResult::Success:
        return "success";
    case BuildResult::Warnings:
        return "warnings";
    case BuildResult::Failure:
        return "failure";
    case BuildResult::Exception:
        return "exception";
    case BuildResult::Cancelled:
        return "cancelled";
    case BuildResult::Retry:
        return "retry";
    }
    return "exception";
}

Result<BuildResult> parse_build_result(std::string_view text) {
    for (const auto result : all_results) {
        if (to_string(result) == text) {
            return result;
        }
    }
    return fail(ErrorCode::InvalidArgument,
                fmt::format("\"{}\" is not a build result (success, warnings, failure, "
                            "exception, cancelled or retry)",
                            text.substr(0, 64)));
}

BuildResult worse(BuildResult a, BuildResult b) noexcept {
    return severity(b) > severity(a) ? b : a;
}

} // namespace ci
