#pragma once

/// \file
/// Work directories, one per build slot: a running build leases one and has it to itself until
/// it ends, so that two builds of one builder on one worker never check out over each other.
///
/// Layout under the work root: `<builder>/<slot>`, the builder's name as one path component
/// (every character other than [A-Za-z0-9._-] replaced by '_'; "", "." and ".." get a leading
/// '_') and the slot a number from 0. Beside each slot directory, `<slot>.lock` (held while the
/// slot is leased) and `<slot>.properties` (a build's CI_PROPERTIES file). A build takes the
/// lowest slot of its builder that is free, so with one build at a time a builder always uses
/// slot 0, and later builds reuse a slot's checkout and build caches.
///
/// A lease is held twice: in its WorkSlots (threads of one process) and by an exclusive flock
/// on the slot's lock file (other processes with the same work root: a second ci-worker started
/// in the same directory takes slot 1). Removing or replacing the lock file (or the whole work
/// root) loses the lease, which WorkLease::check reports.

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::build {

/// A leased slot: its directory is this build's alone until the lease is destroyed.
/// Movable, not copyable; destroying it (or moving over it) releases the slot.
class WorkLease {
public:
    WorkLease(WorkLease&& other) noexcept;
    WorkLease& operator=(WorkLease&& other) noexcept;
    WorkLease(const WorkLease&) = delete;
    WorkLease& operator=(const WorkLease&) = delete;
    ~WorkLease();

    /// The slot's directory: `<work root>/<builder>/<slot>` (created by WorkSlots::lease).
    [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }
    /// The slot's number, from 0.
    [[nodiscard]] int slot() const noexcept { return slot_; }
    /// The descriptor holding the slot's flock, for ProcessSpec::hold_fd: a step's supervisor
    /// keeps the lock until every process of the step is gone, even if this process dies first.
    /// Owned by the lease; -1 once released.
    [[nodiscard]] int lock_fd() const noexcept { return lock_fd_; }
    /// A file beside the directory for this build's own use (its CI_PROPERTIES):
    /// `<work root>/<builder>/<slot>.properties`.
    [[nodiscard]] std::filesystem::path properties_file() const;

    /// Whether the lease still holds its directory: the lock file at its path is the one this
    /// lease locked (not removed or replaced since) and the directory exists. Fails with
    /// Conflict, naming the directory and what changed.
    [[nodiscard]] Status check() const;

private:
    friend class WorkSlots;
    struct Registry;
    WorkLease(std::shared_ptr<Registry> registry,
              std::string builder,
              int slot,
              std::filesystem::path directory,
              int lock_fd);
    void release() noexcept;

    std::shared_ptr<Registry> registry_;
    std::string builder_; // as a directory name
    int slot_ = -1;
    std::filesystem::path directory_;
    int lock_fd_ = -1;
};

/// The slots of one work root. Thread-safe; leases may outlive it.
class WorkSlots {
public:
    /// Slots under `work_root` (created on the first lease). Does no I/O.
    explicit WorkSlots(std::filesystem::path work_root);

    /// The work root.
    [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }

    /// Leases the lowest slot of `builder` that no lease of this WorkSlots and no other process
    /// holds, creating its directory and lock file. The first lease of a builder in a
    /// WorkSlots also clears what an older libci left in `<work root>/<builder>` when it
    /// checked out there directly (a `.git` in it): every entry but the slots'. Fails with Io,
    /// naming the path, when a directory or the lock file cannot be created.
    [[nodiscard]] Result<WorkLease> lease(std::string_view builder);

    /// The directory of `builder`'s slot `slot` under `work_root`, leased or not.
    [[nodiscard]] static std::filesystem::path
    directory(const std::filesystem::path& work_root, std::string_view builder, int slot);

private:
    std::filesystem::path root_;
    std::shared_ptr<WorkLease::Registry> registry_;
};

} // namespace ci::build
