#include "ci/core/cgroup.h"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/cgroup_kill.h"
#include "core/fd.h"

namespace ci {

namespace detail {

namespace {

bool write_text(int dir_fd, const char* name, const char* text, std::size_t size) noexcept {
    const int fd = ::openat(dir_fd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    ssize_t written = 0;
    while ((written = ::write(fd, text, size)) < 0 && errno == EINTR) {
    }
    const int error = errno;
    ::close(fd);
    errno = error;
    return written == static_cast<ssize_t>(size);
}

// The value after "KEY " in cgroup.events ("populated 1\nfrozen 0\n"): 0 or 1, -1 unknown.
int read_event(int dir_fd, const char* key) noexcept {
    const int fd = ::openat(dir_fd, "cgroup.events", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    std::array<char, 256> text{};
    const ssize_t got = ::read(fd, text.data(), text.size() - 1);
    ::close(fd);
    if (got <= 0) {
        return -1;
    }
    const std::size_t key_size = std::strlen(key);
    for (std::size_t at = 0; at + key_size + 1 < static_cast<std::size_t>(got);) {
        if (std::strncmp(text.data() + at, key, key_size) == 0 && text[at + key_size] == ' ') {
            return text[at + key_size + 1] == '1' ? 1 : 0;
        }
        while (at < static_cast<std::size_t>(got) && text[at] != '\n') {
            ++at;
        }
        ++at;
    }
    return -1;
}

void pause_ms(long ms) noexcept {
    timespec wait{0, ms * 1'000'000};
    while (::nanosleep(&wait, &wait) != 0 && errno == EINTR) {
    }
}

} // namespace

bool cgroup_join(int dir_fd) noexcept {
    return write_text(dir_fd, "cgroup.procs", "0", 1);
}

bool cgroup_signal_all(int dir_fd, int signal) noexcept {
    const int fd = ::openat(dir_fd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    bool any = false;
    long long pid = 0;
    bool digits = false;
    std::array<char, 4096> buffer{};
    for (;;) {
        const ssize_t got = ::read(fd, buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        // A number may be split between two reads: it ends at a newline only.
        for (ssize_t i = 0; i < got; ++i) {
            const char c = buffer[static_cast<std::size_t>(i)];
            if (c >= '0' && c <= '9') {
                pid = pid * 10 + (c - '0');
                digits = true;
            } else {
                if (digits && pid > 0 && ::kill(static_cast<pid_t>(pid), signal) == 0) {
                    any = true;
                }
                pid = 0;
                digits = false;
            }
        }
    }
    if (digits && pid > 0 && ::kill(static_cast<pid_t>(pid), signal) == 0) {
        any = true;
    }
    ::close(fd);
    return any;
}

void cgroup_kill_all(int dir_fd, bool kill_file) noexcept {
    if (kill_file && write_text(dir_fd, "cgroup.kill", "1", 1)) {
        return;
    }
    // Frozen, nothing in it can fork while its members are listed and killed; fatal signals
    // reach frozen processes. Freezing takes effect asynchronously: wait for it a little.
    (void)write_text(dir_fd, "cgroup.freeze", "1", 1);
    for (int i = 0; i < 50 && read_event(dir_fd, "frozen") == 0; ++i) {
        pause_ms(2);
    }
    (void)cgroup_signal_all(dir_fd, SIGKILL);
    (void)write_text(dir_fd, "cgroup.freeze", "0", 1);
}

int cgroup_populated(int dir_fd) noexcept {
    return read_event(dir_fd, "populated");
}

} // namespace detail

namespace {

// Undoes the octal escapes of /proc/self/mountinfo ("\040" for a space).
std::string unescape(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\\' && i + 3 < text.size() &&
            text.substr(i + 1, 3).find_first_not_of("01234567") == std::string_view::npos) {
            out.push_back(static_cast<char>((text[i + 1] - '0') * 64 + (text[i + 2] - '0') * 8 +
                                            (text[i + 3] - '0')));
            i += 3;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

std::vector<std::string_view> fields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t at = 0;
    while (at < line.size()) {
        const auto end = std::min(line.find(' ', at), line.size());
        if (end > at) {
            out.push_back(line.substr(at, end - at));
        }
        at = end + 1;
    }
    return out;
}

Result<std::string> read_small_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        return fail(
            ErrorCode::Unsupported, fmt::format("read {}: {}", path, std::strerror(errno)), errno);
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::string join_path(const std::string& directory, std::string_view name) {
    return directory.ends_with('/') ? fmt::format("{}{}", directory, name)
                                    : fmt::format("{}/{}", directory, name);
}

// Moves this process (all its threads) into DIRECTORY, creating it.
Status move_self(const std::string& directory) {
    if (::mkdir(directory.c_str(), 0755) != 0 && errno != EEXIST) {
        return fail(ErrorCode::PermissionDenied,
                    fmt::format("create cgroup {}: {}", directory, std::strerror(errno)),
                    errno);
    }
    std::ofstream procs(join_path(directory, "cgroup.procs"));
    procs << ::getpid() << std::flush;
    if (!procs) {
        return fail(
            ErrorCode::PermissionDenied,
            fmt::format("move this process into cgroup {}: {}", directory, std::strerror(errno)),
            errno);
    }
    return {};
}

// The PID in "libci-step-PID-N", or 0.
pid_t step_owner(std::string_view name) {
    constexpr std::string_view prefix = "libci-step-";
    if (!name.starts_with(prefix)) {
        return 0;
    }
    name.remove_prefix(prefix.size());
    long long pid = 0;
    std::size_t at = 0;
    for (; at < name.size() && name[at] >= '0' && name[at] <= '9' && pid < (1LL << 31); ++at) {
        pid = pid * 10 + (name[at] - '0');
    }
    return at > 0 && at < name.size() && name[at] == '-' ? static_cast<pid_t>(pid) : 0;
}

// A child that tries to join the cgroup: errno when it could not, 0 when it did.
int probe_join(int dir_fd) {
    std::array<int, 2> report{-1, -1};
    if (::pipe2(report.data(), O_CLOEXEC) != 0) {
        return errno;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        const int error = detail::cgroup_join(dir_fd) ? 0 : errno;
        (void)::write(report[1], &error, sizeof error);
        ::_exit(0);
    }
    const int fork_error = errno;
    ::close(report[1]);
    int error = fork_error;
    if (child > 0) {
        error = EIO;
        ssize_t got = 0;
        int value = 0;
        while ((got = ::read(report[0], &value, sizeof value)) < 0 && errno == EINTR) {
        }
        if (got == static_cast<ssize_t>(sizeof value)) {
            error = value;
        }
        while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
        }
    }
    ::close(report[0]);
    return error;
}

} // namespace

Result<CgroupLocation> locate_cgroup(std::string_view mountinfo, std::string_view proc_cgroup) {
    std::string own_path;
    bool found_own = false;
    for (std::size_t at = 0; at < proc_cgroup.size();) {
        const auto end = std::min(proc_cgroup.find('\n', at), proc_cgroup.size());
        const auto line = proc_cgroup.substr(at, end - at);
        at = end + 1;
        if (line.starts_with("0::")) {
            own_path = std::string(line.substr(3));
            found_own = true;
        }
    }
    if (!found_own || !own_path.starts_with('/')) {
        return fail(ErrorCode::Unsupported,
                    "this process is in no cgroup v2 hierarchy (no \"0::\" line in "
                    "/proc/self/cgroup)");
    }
    bool any_mount = false;
    for (std::size_t at = 0; at < mountinfo.size();) {
        const auto end = std::min(mountinfo.find('\n', at), mountinfo.size());
        const auto line = mountinfo.substr(at, end - at);
        at = end + 1;
        const auto parts = fields(line);
        // ID PARENT MAJ:MIN ROOT MOUNT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER
        std::size_t separator = 6;
        while (separator < parts.size() && parts[separator] != "-") {
            ++separator;
        }
        if (separator + 1 >= parts.size() || parts[separator + 1] != "cgroup2") {
            continue;
        }
        any_mount = true;
        const std::string root = unescape(parts[3]);
        const std::string mount = unescape(parts[4]);
        std::string rest;
        if (root == "/") {
            rest = own_path;
        } else if (own_path == root) {
            rest = "/";
        } else if (own_path.starts_with(root + "/")) {
            rest = own_path.substr(root.size());
        } else {
            continue;
        }
        CgroupLocation location;
        location.mount = mount;
        location.own = rest == "/" ? mount : (mount == "/" ? rest : mount + rest);
        return location;
    }
    return fail(ErrorCode::Unsupported,
                any_mount ? fmt::format("this process's cgroup {} is outside every mounted "
                                        "cgroup2 file system",
                                        own_path)
                          : std::string("no cgroup2 file system is mounted"));
}

StepCgroup::~StepCgroup() {
    (void)destroy();
}

StepCgroup::StepCgroup(StepCgroup&& other) noexcept
    : path_(std::exchange(other.path_, {})), fd_(std::exchange(other.fd_, -1)),
      kill_file_(other.kill_file_) {}

StepCgroup& StepCgroup::operator=(StepCgroup&& other) noexcept {
    if (this != &other) {
        (void)destroy();
        path_ = std::exchange(other.path_, {});
        fd_ = std::exchange(other.fd_, -1);
        kill_file_ = other.kill_file_;
    }
    return *this;
}

Status StepCgroup::destroy(std::chrono::milliseconds limit) {
    if (fd_ < 0) {
        return {};
    }
    const auto until = std::chrono::steady_clock::now() + limit;
    auto pause = std::chrono::milliseconds(1);
    Status status;
    for (;;) {
        const int populated = detail::cgroup_populated(fd_);
        if (populated == 0) {
            if (::rmdir(path_.c_str()) == 0 || errno == ENOENT) {
                break;
            }
            if (errno != EBUSY) {
                status = fail(ErrorCode::Io,
                              fmt::format("remove cgroup {}: {}", path_, std::strerror(errno)),
                              errno);
                break;
            }
        } else {
            // Again each round: the freeze fallback may miss a process forked meanwhile.
            detail::cgroup_kill_all(fd_, kill_file_);
        }
        if (std::chrono::steady_clock::now() >= until) {
            status = fail(ErrorCode::Timeout,
                          fmt::format("cgroup {} still has processes after {} ms of SIGKILL",
                                      path_,
                                      limit.count()));
            break;
        }
        std::this_thread::sleep_for(pause);
        pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    ::close(fd_);
    fd_ = -1;
    path_.clear();
    return status;
}

Result<std::shared_ptr<StepCgroups>> StepCgroups::open(const Options& options) {
    auto mountinfo = read_small_file("/proc/self/mountinfo");
    if (!mountinfo) {
        return std::unexpected(mountinfo.error());
    }
    auto own = read_small_file("/proc/self/cgroup");
    if (!own) {
        return std::unexpected(own.error());
    }
    auto location = locate_cgroup(*mountinfo, *own);
    if (!location) {
        return std::unexpected(location.error());
    }
    std::string base;
    if (options.directory.empty()) {
        base = location->own;
        if (const std::filesystem::path path(base);
            path.filename() == "libci-main" && base != location->mount) {
            base = path.parent_path().string();
        }
    } else {
        std::error_code error;
        const auto canonical = std::filesystem::canonical(options.directory, error);
        const std::string mount = location->mount;
        const std::string text = canonical.string();
        if (error || !(text == mount || text.starts_with(join_path(mount, ""))) ||
            ::access(join_path(text, "cgroup.procs").c_str(), F_OK) != 0) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("cgroup directory {}: {}",
                                    options.directory,
                                    error ? error.message()
                                          : fmt::format("not a directory of the cgroup2 file "
                                                        "system mounted at {}",
                                                        mount)));
        }
        base = text;
    }
    if (base == location->own && base != location->mount) {
        // Out of BASE, so that BASE holds no process and could enable controllers for its
        // children (cgroup v2's "no internal processes" rule).
        if (auto moved = move_self(join_path(base, "libci-main")); !moved) {
            return std::unexpected(moved.error());
        }
    }
    std::shared_ptr<StepCgroups> cgroups(new StepCgroups(base, options.use_kill_file));

    // Leftovers of processes that are gone (killed with their supervisors).
    if (DIR* dir = ::opendir(base.c_str()); dir != nullptr) {
        std::vector<std::string> stale;
        while (const dirent* entry = ::readdir(dir)) {
            const pid_t owner = step_owner(entry->d_name);
            if (owner > 0 && owner != ::getpid() && ::kill(owner, 0) != 0 && errno == ESRCH) {
                stale.push_back(join_path(base, entry->d_name));
            }
        }
        ::closedir(dir);
        for (auto& path : stale) {
            const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fd >= 0) {
                StepCgroup leftover(std::move(path), fd, options.use_kill_file);
                (void)leftover.destroy(std::chrono::seconds(2));
            }
        }
    }

    auto probe = cgroups->create_step();
    if (!probe) {
        return fail(ErrorCode::PermissionDenied, probe.error().message, probe.error().native);
    }
    // The hierarchy's root has no cgroup.kill; its children do where the kernel has it (5.14).
    cgroups->kill_file_ =
        options.use_kill_file && ::faccessat(probe->fd(), "cgroup.kill", F_OK, 0) == 0;
    if (const int error = probe_join(probe->fd()); error != 0) {
        return fail(ErrorCode::PermissionDenied,
                    fmt::format("join cgroup {}: {}", probe->path(), std::strerror(error)),
                    error);
    }
    if (auto removed = probe->destroy(std::chrono::seconds(2)); !removed) {
        return fail(ErrorCode::PermissionDenied, removed.error().message, removed.error().native);
    }
    return cgroups;
}

Result<StepCgroup> StepCgroups::create_step() {
    std::string path = join_path(base_, fmt::format("libci-step-{}-{}", ::getpid(), ++next_));
    if (::mkdir(path.c_str(), 0755) != 0) {
        return fail(
            ErrorCode::Io, fmt::format("create cgroup {}: {}", path, std::strerror(errno)), errno);
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        const int error = errno;
        ::rmdir(path.c_str());
        return fail(
            ErrorCode::Io, fmt::format("open cgroup {}: {}", path, std::strerror(error)), error);
    }
    return StepCgroup(std::move(path), fd, kill_file_);
}

std::string StepCgroups::describe() const {
    return fmt::format("steps run in cgroups of their own under {} (stopped with {})",
                       base_,
                       kill_file_ ? "cgroup.kill" : "cgroup.freeze and SIGKILL");
}

} // namespace ci
