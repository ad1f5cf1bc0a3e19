#pragma once

// What run_process's supervisor and step leader do with a step's cgroup, private to libci.
// Every function here is async-signal-safe (open, read, write, kill; no allocation): they run
// in forked copies of a multithreaded process.

namespace ci::detail {

/// Moves the calling process into the cgroup whose directory `dir_fd` is (writes "0" to its
/// cgroup.procs). False with errno set when the kernel refuses.
bool cgroup_join(int dir_fd) noexcept;

/// Sends `signal` to every process listed in the cgroup's cgroup.procs (once; a process forked
/// meanwhile may be missed: cgroup_kill_all is the one that misses none). Returns whether any
/// process got it.
bool cgroup_signal_all(int dir_fd, int signal) noexcept;

/// SIGKILLs every process in the cgroup: "1" to cgroup.kill when `kill_file` (kernel >= 5.14,
/// atomic against forks), else freezes it (cgroup.freeze), SIGKILLs each listed process and
/// thaws it (fatal signals reach frozen processes).
void cgroup_kill_all(int dir_fd, bool kill_file) noexcept;

/// 1 when processes remain in the cgroup (cgroup.events "populated 1"), 0 when none do, -1
/// when that cannot be read.
int cgroup_populated(int dir_fd) noexcept;

} // namespace ci::detail
