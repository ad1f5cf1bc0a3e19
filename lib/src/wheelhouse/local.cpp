// Writing a wheelhouse's index into its directory, without following symbolic links out of it.

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/wheelhouse/index.h>

#include "core/fd.h"

namespace ci::wheelhouse {

namespace {

Error errno_error(std::string_view what, const std::filesystem::path& path, int error) {
    const std::string reason =
        error == ELOOP ? "a symbolic link, not followed out of the wheelhouse; remove it"
                       : std::string(std::strerror(error));
    const ErrorCode code = error == ENOENT ? ErrorCode::NotFound : ErrorCode::Io;
    return Error{code, fmt::format("{} {}: {}", what, path.string(), reason), error};
}

// Each directory is opened with O_NOFOLLOW from the one above it, and each file is written to a
// new temporary file and renamed over its name: a link of that name is replaced, never written
// through, and a link standing for a directory is refused (ELOOP).
class Writer {
public:
    Writer(std::filesystem::path root, Fd fd) : root_(std::move(root)), root_fd_(std::move(fd)) {}

    Status write(const std::filesystem::path& relative, std::string_view content) {
        const std::filesystem::path path = root_ / relative;
        Fd dir;
        int at = root_fd_.get();
        std::filesystem::path walked = root_;
        for (const auto& part : relative.parent_path()) {
            walked /= part;
            if (::mkdirat(at, part.c_str(), 0755) != 0 && errno != EEXIST) {
                return std::unexpected(errno_error("create directory", walked, errno));
            }
            Fd next(::openat(at, part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
            if (!next.valid()) {
                // ENOTDIR: a file or a symbolic link of that name (O_DIRECTORY is looked at
                // first); say which.
                int error = errno;
                struct stat info {};
                if (error == ENOTDIR &&
                    ::fstatat(at, part.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
                    S_ISLNK(info.st_mode)) {
                    error = ELOOP;
                }
                return std::unexpected(errno_error("open directory", walked, error));
            }
            dir = std::move(next);
            at = dir.get();
        }
        const std::string name = relative.filename().string();
        std::string temporary;
        Fd file;
        for (int attempt = 0; !file.valid() && attempt < 100; ++attempt) {
            temporary = fmt::format(".{}.{}.{}.tmp", name, ::getpid(), counter_++);
            file = Fd(::openat(
                at, temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
            if (!file.valid() && errno != EEXIST) {
                break;
            }
        }
        if (!file.valid()) {
            return std::unexpected(errno_error("write", path, errno));
        }
        const auto abandon = [&](int error) {
            ::unlinkat(at, temporary.c_str(), 0);
            return std::unexpected(errno_error("write", path, error));
        };
        std::size_t written = 0;
        while (written < content.size()) {
            const ssize_t n =
                ::write(file.get(), content.data() + written, content.size() - written);
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return abandon(n < 0 ? errno : EIO);
            }
            written += static_cast<std::size_t>(n);
        }
        if (::close(file.release()) != 0) {
            return abandon(errno);
        }
        if (::renameat(at, temporary.c_str(), at, name.c_str()) != 0) {
            return abandon(errno);
        }
        return {};
    }

private:
    std::filesystem::path root_;
    Fd root_fd_;
    unsigned counter_ = 0;
};

} // namespace

Result<std::vector<Error>> write_local_index(const std::filesystem::path& dir,
                                             const std::vector<LocalWheel>& wheels,
                                             std::string_view base_url) {
    Fd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root.valid()) {
        return std::unexpected(errno_error("open", dir, errno));
    }
    Writer writer(dir, std::move(root));
    std::vector<Error> errors;
    std::vector<WheelEntry> entries;
    entries.reserve(wheels.size());
    for (const auto& wheel : wheels) {
        entries.push_back(wheel.entry);
        if (auto written = writer.write(wheel.entry.file_name + ".metadata", wheel.metadata);
            !written) {
            // The pages must not promise what is not there.
            errors.push_back(std::move(written.error()));
            entries.back().metadata_sha256.clear();
        }
    }
    for (const auto& page : build_index(entries, base_url)) {
        // "dir/" is a key S3 can hold but a file system cannot: locally it is dir/index.html.
        if (page.key.ends_with('/')) {
            continue;
        }
        if (auto written = writer.write(page.key, page.body); !written) {
            errors.push_back(std::move(written.error()));
        }
    }
    return errors;
}

} // namespace ci::wheelhouse
