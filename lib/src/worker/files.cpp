#include "worker/files.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/config/worker_files.h>
#include <ci/core/crypto.h>

#include "core/fd.h"

namespace ci::worker {

namespace {

std::unexpected<Error> io_error(std::string_view destination, std::string_view what, int error) {
    return fail(ErrorCode::Io,
                fmt::format("worker file {}: {}: {}", destination, what, std::strerror(error)),
                error);
}

// The directory `name` under `parent`, created (0700, given to `owner`) when missing; never
// through a symbolic link.
Result<Fd> open_directory(int parent,
                          const std::string& name,
                          std::string_view destination,
                          const std::optional<RunAs>& owner) {
    constexpr int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    Fd fd(::openat(parent, name.c_str(), flags));
    if (!fd.valid() && errno == ENOENT) {
        if (::mkdirat(parent, name.c_str(), 0700) != 0 && errno != EEXIST) {
            return io_error(destination, fmt::format("create directory {}", name), errno);
        }
        fd = Fd(::openat(parent, name.c_str(), flags));
        if (fd.valid() && owner && ::fchown(fd.get(), owner->uid, owner->gid) != 0) {
            return io_error(
                destination, fmt::format("give directory {} to {}", name, owner->name), errno);
        }
    }
    if (!fd.valid()) {
        const int error = errno;
        if (error == ELOOP || error == ENOTDIR) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("worker file {}: {} is a symbolic link or not a directory: "
                                    "refused",
                                    destination,
                                    name));
        }
        return io_error(destination, fmt::format("open directory {}", name), error);
    }
    return fd;
}

Status write_all(int fd, std::string_view content) {
    while (!content.empty()) {
        const ssize_t n = ::write(fd, content.data(), content.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return fail(ErrorCode::Io, std::strerror(errno), errno);
        }
        content.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

} // namespace

Status write_worker_file(const std::filesystem::path& work_root,
                         std::string_view destination,
                         std::string_view content,
                         const std::optional<RunAs>& owner) {
    if (auto checked = config::check_worker_file_destination(destination); !checked) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("worker file {}: {}", destination, checked.error().message));
    }
    // The directory the walk starts from: "/" or the work root (the worker's own, which may
    // itself be reached through links: it is opened as given).
    Fd directory;
    std::string_view rest = destination;
    if (rest.front() == '/') {
        directory = Fd(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        rest.remove_prefix(1);
    } else {
        std::error_code error;
        std::filesystem::create_directories(work_root, error);
        directory = Fd(::open(work_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    }
    if (!directory.valid()) {
        return io_error(destination, "open its base directory", errno);
    }
    std::vector<std::string> segments;
    for (auto slash = rest.find('/'); slash != std::string_view::npos; slash = rest.find('/')) {
        segments.emplace_back(rest.substr(0, slash));
        rest.remove_prefix(slash + 1);
    }
    const std::string name(rest);
    for (const auto& segment : segments) {
        auto next = open_directory(directory.get(), segment, destination, owner);
        if (!next) {
            return fail(next.error());
        }
        directory = std::move(*next);
    }
    struct stat existing {};
    if (::fstatat(directory.get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 &&
        !S_ISREG(existing.st_mode)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("worker file {}: exists and is not a regular file (a symbolic "
                                "link or a directory): refused",
                                destination));
    }
    auto random = crypto::random_token(8);
    if (!random) {
        return fail(random.error());
    }
    const std::string temporary = fmt::format(".{}.tmp-{}", name, *random);
    const Fd file(::openat(directory.get(),
                           temporary.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                           0600));
    if (!file.valid()) {
        return io_error(destination, "create a temporary file", errno);
    }
    const auto remove_temporary = [&] { (void)::unlinkat(directory.get(), temporary.c_str(), 0); };
    // 0600 whatever the umask (it can only have taken bits away, but be explicit).
    if (::fchmod(file.get(), 0600) != 0) {
        const int error = errno;
        remove_temporary();
        return io_error(destination, "chmod", error);
    }
    if (owner && ::fchown(file.get(), owner->uid, owner->gid) != 0) {
        const int error = errno;
        remove_temporary();
        return io_error(destination, fmt::format("give it to {}", owner->name), error);
    }
    if (auto written = write_all(file.get(), content); !written) {
        remove_temporary();
        return fail(ErrorCode::Io,
                    fmt::format("worker file {}: write: {}", destination, written.error().message),
                    written.error().native);
    }
    if (::fsync(file.get()) != 0) {
        const int error = errno;
        remove_temporary();
        return io_error(destination, "fsync", error);
    }
    if (::renameat(directory.get(), temporary.c_str(), directory.get(), name.c_str()) != 0) {
        const int error = errno;
        remove_temporary();
        return io_error(destination, "rename into place", error);
    }
    // The rename itself survives a crash once the directory is on disk.
    (void)::fsync(directory.get());
    return {};
}

} // namespace ci::worker
