#pragma once

// What a build led to, for its page (routes_build_page.cpp) and GET /api/v1/builds/{id} alike:
// the builds its trigger steps requested (Store::requests_triggered_by: a triggered request
// records the request and step that queued it, not the build) and the files its upload steps
// stored under DATA_DIR/results (found on the disk: the store keeps no list of them).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>
#include <ci/store/store.h>

namespace ci::master {

/// A request a trigger step queued, with its newest build.
struct TriggeredBuild {
    std::int64_t request = 0;
    int step = 0; ///< the trigger step of the triggering build
    std::string builder;
    std::string state;      ///< the request's state ("pending", "completed", ...)
    std::int64_t build = 0; ///< its newest build; 0 while it has none
    std::string result;     ///< that build's result ("running" while it runs); "" without one
};

/// A top-level entry of a build's results directory: an upload step's `to` (or its first
/// segment).
struct Artifact {
    std::string name;
    bool directory = false;
    std::string url; ///< /results/BUILDER/BRANCH/BUILD/NAME, with a trailing '/' for a directory
};

struct BuildLinks {
    std::vector<TriggeredBuild> triggered;
    std::string results_url;         ///< the build's results directory; "" when it has none
    std::vector<Artifact> artifacts; ///< sorted by name; empty when results_url is
    bool more_artifacts = false;     ///< entries left out past max_artifacts
};

/// Entries of a results directory listed at most.
constexpr std::size_t max_artifacts = 200;

/// The results branch directory of a build of `request` (BRANCH of results/BUILDER/BRANCH/BUILD,
/// before path_segment): "" for a builder without a repository, else the request's branch or
/// its repository's default branch, as Dispatcher's build_spec gives the worker.
[[nodiscard]] std::string results_branch(const config::Config& config,
                                         const store::BuildRequest& request);

/// What build `build` (of `request`, null when it is gone) led to; `results_root` is
/// DATA_DIR/results. Reads the store (a reader thread) and lists one directory, without
/// following symbolic links and leaving out hidden entries (an upload's staging directory).
[[nodiscard]] Result<BuildLinks> build_links(store::Store& store,
                                             const config::Config& config,
                                             const std::filesystem::path& results_root,
                                             const store::Build& build,
                                             const store::BuildRequest* request);

} // namespace ci::master
