#include "common/cgroups.h"

#include <CLI/CLI.hpp>

#include <ci/core/log.h>

namespace ci::tools {

void add_cgroup_option(CLI::App& command, std::string& choice) {
    command
        .add_option("--cgroup",
                    choice,
                    "Run each build step in a cgroup v2 of its own, killed as a whole when the\n"
                    "step ends: 'auto' (under this process's own cgroup, where it may create\n"
                    "one; this process moves into a libci-main leaf there), 'none', or a\n"
                    "delegated directory of the cgroup2 file system. Without one, the step's\n"
                    "supervisor (a child subreaper) alone stops its processes")
        ->default_str("auto");
}

Result<std::shared_ptr<StepCgroups>> open_step_cgroups(const std::string& choice, bool quiet) {
    if (choice == "none") {
        return std::shared_ptr<StepCgroups>();
    }
    StepCgroups::Options options;
    if (choice != "auto") {
        options.directory = choice;
    }
    auto cgroups = StepCgroups::open(options);
    if (!cgroups) {
        if (!options.directory.empty()) {
            return std::unexpected(cgroups.error().with_context("--cgroup"));
        }
        if (!quiet) {
            log::info("no cgroup for build steps ({}): their supervisor (a subreaper) alone "
                      "stops their processes",
                      cgroups.error().message);
        }
        return std::shared_ptr<StepCgroups>();
    }
    if (!quiet) {
        log::info("{}", (*cgroups)->describe());
    }
    return *cgroups;
}

} // namespace ci::tools
