#include "ci/worker/secret_state.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "worker/files.h"

namespace ci::worker {

namespace {

// A secret is a token's hex digits; the two lines are short.
constexpr std::size_t max_state_size = 4096;

} // namespace

Result<std::optional<std::string>> load_secret_state(const std::filesystem::path& path,
                                                     std::string_view name) {
    std::error_code error;
    if (!std::filesystem::exists(std::filesystem::symlink_status(path, error))) {
        return std::optional<std::string>{};
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        const int error_number = errno;
        return fail(ErrorCode::Io,
                    fmt::format("cannot read the secret state {}: {}",
                                path.string(),
                                std::strerror(error_number)),
                    error_number);
    }
    std::string text(max_state_size + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    text.resize(static_cast<std::size_t>(in.gcount()));
    const auto malformed = [&] {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("the secret state {} is not two lines (a worker name and its "
                                "secret): remove it to log in with the one-time token",
                                path.string()));
    };
    if (text.size() > max_state_size) {
        return malformed();
    }
    const auto first = text.find('\n');
    if (first == std::string::npos) {
        return malformed();
    }
    const auto second = text.find('\n', first + 1);
    if (second == std::string::npos || second + 1 != text.size()) {
        return malformed();
    }
    std::string secret = text.substr(first + 1, second - first - 1);
    if (secret.empty()) {
        return malformed();
    }
    if (std::string_view(text).substr(0, first) != name) {
        return std::optional<std::string>{};
    }
    return std::optional<std::string>{std::move(secret)};
}

Status save_secret_state(const std::filesystem::path& path,
                         std::string_view name,
                         std::string_view secret) {
    if (!path.is_absolute()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("the secret state {} must be an absolute path", path.string()));
    }
    if (name.find('\n') != std::string_view::npos || secret.find('\n') != std::string_view::npos) {
        return fail(ErrorCode::InvalidArgument, "a worker name or secret holds a line break");
    }
    const std::string text = fmt::format("{}\n{}\n", name, secret);
    if (auto written = write_worker_file("/", path.lexically_normal().string(), text); !written) {
        return fail(ErrorCode::Io,
                    fmt::format("keeping the rotated secret in {}: {}",
                                path.string(),
                                written.error().message),
                    written.error().native);
    }
    return {};
}

} // namespace ci::worker
