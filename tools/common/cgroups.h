#pragma once

// The --cgroup option of the programs that run build steps (ci-worker start and run-step,
// ci-master start for its local workers).

#include <memory>
#include <string>

#include <ci/core/cgroup.h>
#include <ci/core/error.h>

namespace CLI {
class App;
}

namespace ci::tools {

/// Adds `--cgroup auto|none|DIR` (default auto) to `command`, stored in `choice`.
void add_cgroup_option(CLI::App& command, std::string& choice);

/// The step cgroups `choice` asks for: "none": null; "auto": under this process's own cgroup,
/// or null when none can be made there (said once in the log unless `quiet`: the subreaper
/// alone stops steps then); a directory: under it, or an error (InvalidArgument,
/// PermissionDenied, Unsupported) saying why, since the operator asked for it. Call it before
/// become_subreaper().
[[nodiscard]] Result<std::shared_ptr<StepCgroups>> open_step_cgroups(const std::string& choice,
                                                                     bool quiet = false);

} // namespace ci::tools
