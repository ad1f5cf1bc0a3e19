#pragma once

// The home page's grid, as data: builders (rows) by branches (columns), each cell the newest
// build of that builder on that branch. Pure: no store, no clock (the caller passes `now`);
// the page (home.mustache) and GET /api/v1/grid show the same Grid.
//
// Columns: the repositories' default branches first ("master", there before their first build),
// by name, then the other
// branches by their last activity (the newest build start on them, any builder), newest first,
// then by name. Rows: builders by name; those of `failing_builders` in a section of their own
// (a known failure never reads as red).

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ci/core/clock.h>
#include <ci/store/store.h>

namespace ci::web {

/// What the grid is made of.
struct GridInput {
    /// Builders by name, with their repository ("" for none): every builder of the config.
    std::map<std::string, std::string> builders;
    std::set<std::string> failing; ///< `failing_builders`
    /// Each repository's default branch, by repository: a column from the start (empty cells
    /// until a build), unless a result filter is given.
    std::map<std::string, std::string> default_branches;
    std::vector<store::BranchBuild> builds; ///< the newest build per builder and branch
};

/// Which part of the grid to show (the page's query parameters).
struct GridFilter {
    std::string repository; ///< only builders of this repository; empty: all
    std::string result;     ///< only cells with this result ("failure", "running"...); empty: all
    std::size_t max_branches = 50; ///< columns at most (the most active ones are kept)
    friend bool operator==(const GridFilter&, const GridFilter&) = default;
};

/// One cell: a build.
struct GridCell {
    std::int64_t build = 0;
    std::string result; ///< to_string(BuildResult), or "running"
    WallTime started{};
    std::optional<WallTime> finished;
};

struct GridRow {
    std::string builder;
    std::string repository;
    bool failing = false;                       ///< in `failing_builders`
    std::vector<std::optional<GridCell>> cells; ///< one per column; nullopt: no build there
};

struct Grid {
    std::vector<std::string> branches; ///< the columns, in order
    std::vector<GridRow> rows;         ///< builders not in `failing_builders`, by name
    std::vector<GridRow> failing;      ///< builders in `failing_builders`, by name
    std::size_t hidden_branches = 0;   ///< columns left out by max_branches
};

/// The grid of `input` under `filter`. With a result filter, rows and columns without a
/// matching cell are left out and the other cells are empty.
[[nodiscard]] Grid make_grid(const GridInput& input, const GridFilter& filter);

/// A build's result as the grid shows it: to_string(result), "running" while unfinished.
[[nodiscard]] std::string result_name(const store::Build& build);

/// How long ago, short: "<1m", "12m", "3h", "5d" (a time in the future counts as "<1m"). Not
/// to the second: a live page's poll gets a 304 while nothing happened.
[[nodiscard]] std::string age_text(WallTime then, WallTime now);

/// A duration, short: "1m05s", "2h03m", "12s".
[[nodiscard]] std::string duration_text(std::chrono::seconds duration);

} // namespace ci::web
