#include "master/results_retention.h"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <sys/stat.h>

#include <ci/core/log.h>

namespace ci::master {

namespace {

constexpr int open_dir_flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

/// The names in the directory `fd` (which stays open), without "." and "..".
std::vector<std::string> names_in(int fd) {
    std::vector<std::string> names;
    const int copy = ::dup(fd);
    if (copy < 0) {
        return names;
    }
    DIR* dir = ::fdopendir(copy);
    if (dir == nullptr) {
        ::close(copy);
        return names;
    }
    ::rewinddir(dir);
    while (const dirent* entry = ::readdir(dir)) {
        const std::string_view name = entry->d_name;
        if (name != "." && name != "..") {
            names.emplace_back(name);
        }
    }
    ::closedir(dir);
    return names;
}

/// The subdirectories (never symbolic links) of the directory `fd`, with their stat.
std::vector<std::pair<std::string, struct stat>> subdirectories(int fd) {
    std::vector<std::pair<std::string, struct stat>> out;
    for (auto& name : names_in(fd)) {
        struct stat info {};
        if (::fstatat(fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(info.st_mode)) {
            out.emplace_back(std::move(name), info);
        }
    }
    return out;
}

/// Removes `name` in the directory `parent` and everything below it, never following a
/// symbolic link. True when it is gone.
bool remove_tree(int parent, const std::string& name, int depth = 0) {
    if (::unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) {
        return true; // a file or a symbolic link (removed as a link)
    }
    if ((errno != EISDIR && errno != EPERM) || depth > 256) {
        return false;
    }
    const int fd = ::openat(parent, name.c_str(), open_dir_flags);
    if (fd < 0) {
        return false;
    }
    bool ok = true;
    for (const auto& child : names_in(fd)) {
        ok = remove_tree(fd, child, depth + 1) && ok;
    }
    ::close(fd);
    return ::unlinkat(parent, name.c_str(), AT_REMOVEDIR) == 0 && ok;
}

/// The bytes of the regular files below the directory `fd` (which stays open), never
/// following a symbolic link.
std::uint64_t tree_bytes(int fd, int depth = 0) {
    std::uint64_t total = 0;
    for (const auto& name : names_in(fd)) {
        struct stat info {};
        if (::fstatat(fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        if (S_ISREG(info.st_mode)) {
            total += static_cast<std::uint64_t>(info.st_size);
        } else if (S_ISDIR(info.st_mode) && depth < 256) {
            const int child = ::openat(fd, name.c_str(), open_dir_flags);
            if (child >= 0) {
                total += tree_bytes(child, depth + 1);
                ::close(child);
            }
        }
    }
    return total;
}

} // namespace

SweepReport sweep_partials(const std::filesystem::path& partials,
                           WallTime now,
                           std::chrono::seconds max_age,
                           const std::set<std::string>& in_use) {
    SweepReport report;
    const int fd = ::open(partials.c_str(), open_dir_flags);
    if (fd < 0) {
        return report; // no upload yet
    }
    const auto cutoff = std::chrono::system_clock::to_time_t(now - max_age);
    for (const auto& name : names_in(fd)) {
        struct stat info {};
        if (in_use.contains(name) || ::fstatat(fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 ||
            S_ISDIR(info.st_mode) || info.st_mtime >= cutoff) {
            continue;
        }
        if (::unlinkat(fd, name.c_str(), 0) == 0) {
            ++report.deleted;
            log::info("results: deleted the partial file {} ({} bytes) of an upload not resumed "
                      "within {} s",
                      log::field(name),
                      info.st_size,
                      max_age.count());
        } else {
            ++report.failed;
            log::warn("results: could not delete the partial file {}: {}",
                      log::field(name),
                      std::strerror(errno));
        }
    }
    ::close(fd);
    return report;
}

SweepReport
sweep_results(const std::filesystem::path& root, WallTime now, std::chrono::seconds retention) {
    SweepReport report;
    const int root_fd = ::open(root.c_str(), open_dir_flags);
    if (root_fd < 0) {
        return report; // no results stored yet
    }
    const auto cutoff = std::chrono::system_clock::to_time_t(now - retention);
    for (const auto& [builder, builder_info] : subdirectories(root_fd)) {
        if (retention.count() <= 0) {
            break; // kept forever: measured only
        }
        const int builder_fd = ::openat(root_fd, builder.c_str(), open_dir_flags);
        if (builder_fd < 0) {
            continue;
        }
        for (const auto& [branch, branch_info] : subdirectories(builder_fd)) {
            const int branch_fd = ::openat(builder_fd, branch.c_str(), open_dir_flags);
            if (branch_fd < 0) {
                continue;
            }
            std::size_t deleted_here = 0;
            for (const auto& [build, info] : subdirectories(branch_fd)) {
                if (info.st_mtime >= cutoff) {
                    continue;
                }
                if (remove_tree(branch_fd, build)) {
                    ++report.deleted;
                    ++deleted_here;
                    log::info("results: deleted {}/{}/{} (older than the retention)",
                              log::field(builder),
                              log::field(branch),
                              log::field(build));
                } else {
                    ++report.failed;
                    log::warn("results: could not wholly delete {}/{}/{}: {}",
                              log::field(builder),
                              log::field(branch),
                              log::field(build),
                              std::strerror(errno));
                }
            }
            ::close(branch_fd);
            if (deleted_here > 0) {
                // Left empty by this sweep: gone too (fails harmlessly when not empty).
                (void)::unlinkat(builder_fd, branch.c_str(), AT_REMOVEDIR);
                (void)::unlinkat(root_fd, builder.c_str(), AT_REMOVEDIR);
            }
        }
        ::close(builder_fd);
    }
    report.kept_bytes = tree_bytes(root_fd);
    ::close(root_fd);
    if (report.deleted > 0 || report.failed > 0) {
        log::info("results: the retention sweep deleted {} build directories ({} failed)",
                  report.deleted,
                  report.failed);
    }
    return report;
}

} // namespace ci::master
