#include "ci/build/work_slots.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <ci/core/log.h>

#include "build/steps.h"

namespace ci::build {

// What the leases of one WorkSlots hold, by builder directory name. Shared with the leases, so
// that a lease may outlive its WorkSlots.
struct WorkLease::Registry {
    std::mutex mutex;
    std::map<std::string, std::set<int>> held;
    std::set<std::string> checked; // builders whose directory was checked for the old layout
};

namespace {

// More slots than this for one builder is a runaway, not a busy worker.
constexpr int max_slots = 100000;

std::unexpected<Error> io_failure(std::string_view what, const std::filesystem::path& path) {
    const int error = errno;
    return fail(
        ErrorCode::Io, fmt::format("{} {}: {}", what, path.string(), std::strerror(error)), error);
}

bool all_digits(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// Whether `entry` of a builder's directory belongs to a slot: a directory named by a number,
// or a file named by one with the suffix .lock or .properties.
bool slot_entry(const std::filesystem::directory_entry& entry) {
    std::error_code error;
    const std::string name = entry.path().filename().string();
    if (all_digits(name)) {
        return entry.is_directory(error) && !entry.is_symlink(error);
    }
    for (const std::string_view suffix : {".lock", ".properties"}) {
        if (name.ends_with(suffix) && all_digits(name.substr(0, name.size() - suffix.size()))) {
            return entry.is_regular_file(error) && !entry.is_symlink(error);
        }
    }
    return false;
}

// Before slots, a builder's checkout was `<work root>/<builder>` itself. What such a checkout
// left is removed (the slots' own entries are kept, so that this is safe while another process
// leases slots of the same builder).
void clear_old_layout(const std::filesystem::path& builder_dir) {
    std::error_code error;
    if (!std::filesystem::exists(builder_dir / ".git", error)) {
        return;
    }
    log::warn("{} holds a checkout of an older libci (one directory per builder); removing it: "
              "builds now run in {}/<slot>",
              builder_dir.string(),
              builder_dir.string());
    for (const auto& entry : std::filesystem::directory_iterator(builder_dir, error)) {
        if (!slot_entry(entry)) {
            std::error_code ignored;
            std::filesystem::remove_all(entry.path(), ignored);
        }
    }
}

// Whether the file at `path` is the one open as `fd`.
bool same_file(int fd, const std::filesystem::path& path) {
    struct stat open_file {};
    struct stat named {};
    return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &named) == 0 &&
           open_file.st_dev == named.st_dev && open_file.st_ino == named.st_ino;
}

std::filesystem::path lock_path(const std::filesystem::path& directory) {
    return directory.string() + ".lock";
}

} // namespace

WorkLease::WorkLease(std::shared_ptr<Registry> registry,
                     std::string builder,
                     int slot,
                     std::filesystem::path directory,
                     int lock_fd)
    : registry_(std::move(registry)), builder_(std::move(builder)), slot_(slot),
      directory_(std::move(directory)), lock_fd_(lock_fd) {}

WorkLease::WorkLease(WorkLease&& other) noexcept
    : registry_(std::move(other.registry_)), builder_(std::move(other.builder_)),
      slot_(std::exchange(other.slot_, -1)), directory_(std::move(other.directory_)),
      lock_fd_(std::exchange(other.lock_fd_, -1)) {}

WorkLease& WorkLease::operator=(WorkLease&& other) noexcept {
    if (this != &other) {
        release();
        registry_ = std::move(other.registry_);
        builder_ = std::move(other.builder_);
        slot_ = std::exchange(other.slot_, -1);
        directory_ = std::move(other.directory_);
        lock_fd_ = std::exchange(other.lock_fd_, -1);
    }
    return *this;
}

WorkLease::~WorkLease() {
    release();
}

void WorkLease::release() noexcept {
    if (lock_fd_ >= 0) {
        // The lock file stays: removing it would let a process that opened it just before
        // lock a file no longer at the path, while a third locks a new one.
        ::close(lock_fd_);
        lock_fd_ = -1;
    }
    if (registry_ && slot_ >= 0) {
        const std::lock_guard lock(registry_->mutex);
        registry_->held[builder_].erase(slot_);
    }
    registry_.reset();
    slot_ = -1;
}

std::filesystem::path WorkLease::properties_file() const {
    return directory_.string() + ".properties";
}

Status WorkLease::check() const {
    if (lock_fd_ < 0) {
        return fail(ErrorCode::Conflict, "work directory: no slot is leased");
    }
    if (!same_file(lock_fd_, lock_path(directory_))) {
        return fail(ErrorCode::Conflict,
                    fmt::format("work directory {}: its lock file {} was removed or replaced, so "
                                "another build may use the directory",
                                directory_.string(),
                                lock_path(directory_).string()));
    }
    std::error_code error;
    if (!std::filesystem::is_directory(directory_, error)) {
        return fail(ErrorCode::Conflict,
                    fmt::format("work directory {} is gone", directory_.string()));
    }
    return {};
}

WorkSlots::WorkSlots(std::filesystem::path work_root)
    : root_(std::move(work_root)), registry_(std::make_shared<WorkLease::Registry>()) {}

std::filesystem::path
WorkSlots::directory(const std::filesystem::path& work_root, std::string_view builder, int slot) {
    return work_root / detail::directory_name(builder) / std::to_string(slot);
}

Result<WorkLease> WorkSlots::lease(std::string_view builder) {
    const std::string name = detail::directory_name(builder);
    const auto builder_dir = root_ / name;
    std::error_code error;
    std::filesystem::create_directories(builder_dir, error);
    if (error) {
        return fail(ErrorCode::Io,
                    fmt::format("create {}: {}", builder_dir.string(), error.message()),
                    error.value());
    }
    bool first = false;
    {
        const std::lock_guard lock(registry_->mutex);
        first = registry_->checked.insert(name).second;
    }
    if (first) {
        clear_old_layout(builder_dir);
    }
    std::set<int> held_elsewhere; // by other processes, as found by this call
    for (;;) {
        int slot = 0;
        {
            const std::lock_guard lock(registry_->mutex);
            auto& held = registry_->held[name];
            while (held.contains(slot) || held_elsewhere.contains(slot)) {
                ++slot;
            }
            if (slot >= max_slots) {
                return fail(ErrorCode::Io,
                            fmt::format("lease a work directory in {}: all {} slots are taken",
                                        builder_dir.string(),
                                        max_slots));
            }
            held.insert(slot);
        }
        // The files outside the mutex: other builds of the worker need not wait for them.
        const auto unreserve = [&] {
            const std::lock_guard lock(registry_->mutex);
            registry_->held[name].erase(slot);
        };
        const auto directory = builder_dir / std::to_string(slot);
        const auto lock_file = lock_path(directory);
        const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            auto failure = io_failure("open the lock file", lock_file);
            unreserve();
            return failure;
        }
        int locked = 0;
        while ((locked = ::flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
        }
        if (locked != 0 && errno != EWOULDBLOCK) {
            auto failure = io_failure("lock", lock_file);
            ::close(fd);
            unreserve();
            return failure;
        }
        if (locked != 0 || !same_file(fd, lock_file)) {
            // Held by another process (or the file was replaced meanwhile): try the next slot.
            ::close(fd);
            unreserve();
            held_elsewhere.insert(slot);
            continue;
        }
        std::filesystem::create_directories(directory, error);
        if (error) {
            ::close(fd);
            unreserve();
            return fail(ErrorCode::Io,
                        fmt::format("create {}: {}", directory.string(), error.message()),
                        error.value());
        }
        return WorkLease(registry_, name, slot, directory, fd);
    }
}

} // namespace ci::build
