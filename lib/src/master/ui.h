#pragma once

// The pure parts of the master's web UI routes (routes_ui.cpp), for tests and bench/ui: the
// home page's data and the grid's JSON, made from a Grid (lib/src/web/grid.h).

#include <string>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/store/store.h>

#include "web/grid.h"
#include "web/render.h"

namespace ci::master {

/// What the grid is made of: the config's builders, failing builders and default branches, and
/// the store's newest build of each builder and branch (Store::latest_builds). Call it on a
/// reader thread.
[[nodiscard]] Result<web::GridInput> grid_input(const config::Config& config, store::Store& store);

/// What home.mustache renders: the filters' choices, the grid (and the failing builders' own
/// section), the link to its JSON and the force form's builders.
[[nodiscard]] web::Data home_data(const config::Config& config,
                                  const web::Grid& grid,
                                  const web::GridFilter& filter,
                                  WallTime now);

/// GET /api/v1/grid's body: {"branches": [...], "hidden_branches": N, "builders": [{name,
/// repository, failing, cells: [{branch, build, result, started, finished}]}]} (cells only where
/// there is a build).
[[nodiscard]] std::string grid_json(const web::Grid& grid);

/// `max_builds` of a worker class of the config; 0 for a class it does not have.
[[nodiscard]] int class_max_builds(const config::Config& config, const std::string& worker_class);

} // namespace ci::master
