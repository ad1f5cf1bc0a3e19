#pragma once

/// \file
/// A cgroup v2 of its own for each build step, where this process can create one.
///
/// run_process's supervisor stops a step's processes by walking the process tree below it (a
/// child subreaper). A cgroup adds what a tree walk cannot promise: a fork storm cannot outrun
/// `cgroup.kill` (one atomic SIGKILL to every member, kernel >= 5.14; older kernels freeze the
/// cgroup, SIGKILL each member, thaw), and a process that left the tree (its supervisor killed,
/// so it went to init) is still found, since only a privileged process can move out of it.
///
/// Layout under the base directory BASE (see StepCgroups::open):
///   BASE/libci-main         this process, when it was in BASE itself (moved there once)
///   BASE/libci-step-PID-N   one per running step (PID: this process; N: a counter); the
///                           step's leader joins it before exec; removed when the step ends
/// Moving this process out of BASE keeps BASE free of processes, so that (cgroup v2's "no
/// internal processes" rule) controllers can later be enabled in BASE/cgroup.subtree_control
/// to limit each step: `memory.max`, `cpu.max` and `pids.max` written into the step's directory
/// before its leader joins would do it. No limit is set today.

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <ci/core/error.h>

namespace ci {

/// Where this process sits in the cgroup v2 hierarchy.
struct CgroupLocation {
    std::string mount; ///< the cgroup2 mount point, e.g. /sys/fs/cgroup
    std::string own;   ///< this process's cgroup directory under it, e.g. /sys/fs/cgroup/a.service
};

/// Pure: the cgroup2 mount and this process's cgroup directory, from the text of
/// /proc/self/mountinfo and /proc/self/cgroup (its "0::PATH" line). Fails with Unsupported when
/// no cgroup2 file system is mounted, there is no "0::" line (cgroup v1 only), or the process's
/// cgroup is outside the mounted subtree.
[[nodiscard]] Result<CgroupLocation> locate_cgroup(std::string_view mountinfo,
                                                   std::string_view proc_cgroup);

/// One step's cgroup: an empty directory the step's leader joins. Move-only; destroying it
/// (or the destructor) kills what is left in it and removes it.
class StepCgroup {
public:
    StepCgroup() = default;
    StepCgroup(std::string path, int fd, bool kill_file) noexcept
        : path_(std::move(path)), fd_(fd), kill_file_(kill_file) {}
    ~StepCgroup();
    StepCgroup(StepCgroup&& other) noexcept;
    StepCgroup& operator=(StepCgroup&& other) noexcept;
    StepCgroup(const StepCgroup&) = delete;
    StepCgroup& operator=(const StepCgroup&) = delete;

    /// Its directory; empty once destroyed.
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    /// An open descriptor of its directory (for run_process's supervisor); -1 once destroyed.
    [[nodiscard]] int fd() const noexcept { return fd_; }
    /// SIGKILLs every process in it (cgroup.kill, or freeze + SIGKILL each + thaw without it),
    /// waits until cgroup.events says "populated 0" (at most `limit`), and removes it. Fails
    /// with Timeout (processes stuck in the kernel) or Io (rmdir) naming the directory; the
    /// directory is then left for the next StepCgroups::open of BASE to remove.
    [[nodiscard]] Status destroy(std::chrono::milliseconds limit = std::chrono::seconds(10));

private:
    std::string path_;
    int fd_ = -1;
    bool kill_file_ = true;
};

/// Makes the step cgroups of one process (a worker, a master with local workers, run-step).
/// Thread-safe.
class StepCgroups {
public:
    struct Options {
        /// The base directory: empty for this process's own cgroup ("auto"); else an existing
        /// directory of the cgroup2 file system (e.g. one systemd delegated: Delegate=yes).
        std::string directory;
        /// Use cgroup.kill when the kernel has it (true), or always the freeze fallback (for
        /// its test).
        bool use_kill_file = true;
    };

    /// Sets up BASE: finds the cgroup2 mount and this process's cgroup (/proc/self), moves this
    /// process into BASE/libci-main when it is in BASE and BASE is not the hierarchy's root
    /// (automatic: BASE is the process's own cgroup, or its parent when that is libci-main),
    /// removes leftovers of processes that are gone (BASE/libci-step-PID-N whose PID is not
    /// running: a worker killed with its supervisors; this assumes every process using BASE is
    /// in this PID namespace, so give processes of other containers their own BASE), and checks
    /// with a forked probe that a child process can join a new cgroup there. Fails with Unsupported
    /// (no cgroup v2), InvalidArgument (a `directory` that is not a cgroup2 directory) or
    /// PermissionDenied (cannot create or join), with the reason: the caller then keeps the
    /// subreaper alone. Call it before become_subreaper(), whose reaper would take the probe.
    [[nodiscard]] static Result<std::shared_ptr<StepCgroups>> open(const Options& options);

    /// A new empty cgroup for one step, BASE/libci-step-PID-N. Fails with Io naming it.
    [[nodiscard]] Result<StepCgroup> create_step();

    /// BASE.
    [[nodiscard]] const std::string& base() const noexcept { return base_; }
    /// Whether steps are killed with cgroup.kill (else: freeze and SIGKILL each).
    [[nodiscard]] bool kill_file() const noexcept { return kill_file_; }
    /// One line for the log: "steps run in cgroups under BASE (cgroup.kill)".
    [[nodiscard]] std::string describe() const;

private:
    StepCgroups(std::string base, bool kill_file) : base_(std::move(base)), kill_file_(kill_file) {}
    std::string base_;
    bool kill_file_ = true;
    std::atomic<unsigned long long> next_{0};
};

} // namespace ci
