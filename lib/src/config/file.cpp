#include "config/file.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <tuple>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include "core/fd.h"
#include "core/utf8.h"

namespace ci::config::detail {

namespace {

ErrorCode code_for_errno(int error) {
    switch (error) {
    case ENOENT:
    case ENOTDIR:
        return ErrorCode::NotFound;
    case EACCES:
    case EPERM:
        return ErrorCode::PermissionDenied;
    default:
        return ErrorCode::Io;
    }
}

std::unexpected<Error>
errno_error(std::string_view what, const std::filesystem::path& path, int error) {
    return fail(code_for_errno(error),
                fmt::format("{} {}: {}", what, path.string(), std::strerror(error)),
                error);
}

} // namespace

Result<std::string>
read_text_file(const std::filesystem::path& path, std::string_view what, std::size_t limit) {
    const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        return errno_error(what, path, errno);
    }
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) {
        return errno_error(what, path, errno);
    }
    if (S_ISDIR(info.st_mode)) {
        return errno_error(what, path, EISDIR);
    }
    std::string content;
    std::array<char, 65536> buffer; // not zero-filled: read() writes what is used
    while (content.size() < limit) {
        const ssize_t n =
            ::read(fd.get(), buffer.data(), std::min(buffer.size(), limit - content.size()));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return errno_error(what, path, errno);
        }
        if (n == 0) {
            break;
        }
        content.append(buffer.data(), static_cast<std::size_t>(n));
    }
    return content;
}

std::pair<int, int> line_and_column(std::string_view text, std::size_t offset) {
    int line = 1;
    int column = 1;
    for (std::size_t i = 0; i < std::min(offset, text.size()); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

std::optional<Diagnostic> refuse_text(std::string_view text, std::string_view origin) {
    Diagnostic diagnostic;
    diagnostic.origin = std::string(origin);
    if (text.size() > max_config_size) {
        diagnostic.message =
            fmt::format("longer than {} MiB, the limit for a config", max_config_size >> 20U);
        return diagnostic;
    }
    std::optional<std::size_t> offset;
    if (const auto nul = text.find('\0'); nul != std::string_view::npos) {
        offset = nul;
        diagnostic.message = "a NUL byte: a config is UTF-8 text";
    }
    // A NUL byte is valid UTF-8: whichever comes first is reported.
    if (const auto invalid = first_invalid_utf8(text.substr(0, offset.value_or(text.size())))) {
        offset = invalid;
        diagnostic.message = fmt::format("invalid UTF-8 (byte 0x{:02x}): a config is UTF-8 text",
                                         static_cast<unsigned char>(text[*invalid]));
    }
    if (!offset) {
        return std::nullopt;
    }
    std::tie(diagnostic.line, diagnostic.column) = line_and_column(text, *offset);
    return diagnostic;
}

Status write_private_file(const std::filesystem::path& path, std::string_view content) {
    const std::filesystem::path directory =
        path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    std::string temporary =
        (directory / fmt::format(".{}.XXXXXX", path.filename().string())).string();
    // mkstemp creates the file with mode 0600, so the secret is never readable by others.
    Fd fd(::mkostemp(temporary.data(), O_CLOEXEC));
    if (fd.get() < 0) {
        return errno_error("write", path, errno);
    }
    const auto abandon = [&](int error) {
        ::unlink(temporary.c_str());
        return errno_error("write", path, error);
    };
    std::size_t written = 0;
    while (written < content.size()) {
        const ssize_t n = ::write(fd.get(), content.data() + written, content.size() - written);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return abandon(errno);
        }
        written += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
        return abandon(errno);
    }
    if (::close(fd.release()) != 0) {
        return abandon(errno);
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        return abandon(errno);
    }
    return {};
}

} // namespace ci::config::detail
