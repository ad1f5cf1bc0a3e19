#pragma once

/// \file
/// Keeping a program's secrets out of reach of the build steps it runs as the same user.
///
/// A process's initial environment block (what the kernel shows in /proc/PID/environ) keeps the
/// bytes it started with even after unsetenv, and any process of the same user may read it, and
/// the process's memory, unless the process is marked non-dumpable. protect_secrets overwrites
/// the secret entries of that block in place and marks the process non-dumpable, so a step
/// reading /proc/$PPID/environ (or an ancestor's) finds nothing. A root step (CAP_SYS_PTRACE)
/// can still read memory: run steps as another user (ProcessSpec::run_as) against that.

#include <string_view>

#include <ci/core/error.h>

namespace ci {

/// Whether `name` is a variable protect_secrets scrubs: LIBCI_CONFIG, CI_WORKER_SECRET,
/// CI_GIT_TOKEN, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, and any name holding SECRET, TOKEN,
/// PASSWORD or PASSWD (in any case).
[[nodiscard]] bool is_secret_variable(std::string_view name) noexcept;

/// For a program's main, before it starts threads: overwrites with NUL bytes every entry of
/// this process's initial environment block whose name is_secret_variable (getenv still returns
/// the value: it is first copied with setenv), then marks the process non-dumpable
/// (PR_SET_DUMPABLE 0: same-user processes can no longer open /proc/PID/environ or /mem, and no
/// core file is written). Returns how many entries it scrubbed. Fails with Io when
/// /proc/self/stat cannot be read, and Unsupported (native: errno) when prctl fails; the entries
/// are scrubbed even then.
[[nodiscard]] Result<int> protect_secrets();

} // namespace ci
