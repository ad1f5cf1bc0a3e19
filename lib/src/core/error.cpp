#include "ci/core/error.h"

#include <fmt/format.h>

namespace ci {

std::string_view to_string(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::InvalidArgument:
        return "invalid-argument";
    case ErrorCode::NotFound:
        return "not-found";
    case ErrorCode::Io:
        return "io";
    case ErrorCode::Timeout:
        return "timeout";
    case ErrorCode::Cancelled:
        return "cancelled";
    case ErrorCode::PermissionDenied:
        return "permission-denied";
    case ErrorCode::Unsupported:
        return "unsupported";
    case ErrorCode::Internal:
        return "internal";
    case ErrorCode::Conflict:
        return "conflict";
    case ErrorCode::ConfigSyntax:
        return "config-syntax";
    case ErrorCode::ConfigInvalid:
        return "config-invalid";
    case ErrorCode::ProcessSpawn:
        return "process-spawn";
    case ErrorCode::Transport:
        return "transport";
    case ErrorCode::AwsService:
        return "aws-service";
    case ErrorCode::AwsCredentials:
        return "aws-credentials";
    case ErrorCode::Git:
        return "git";
    case ErrorCode::Store:
        return "store";
    }
    return "unknown";
}

std::string Error::to_string() const {
    if (native) {
        return fmt::format("{} [{}, native {}]", message, ci::to_string(code), *native);
    }
    return fmt::format("{} [{}]", message, ci::to_string(code));
}

Error Error::with_context(std::string_view context) const {
    Error copy = *this;
    copy.message = fmt::format("{}: {}", context, message);
    return copy;
}

} // namespace ci
