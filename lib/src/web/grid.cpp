#include "web/grid.h"

#include <algorithm>
#include <unordered_map>

#include <fmt/format.h>

namespace ci::web {

namespace {

bool matches(const GridCell& cell, const GridFilter& filter) {
    return filter.result.empty() || cell.result == filter.result;
}

} // namespace

std::string result_name(const store::Build& build) {
    if (!build.finished) {
        return "running";
    }
    return build.result ? std::string(to_string(*build.result)) : "unknown";
}

Grid make_grid(const GridInput& input, const GridFilter& filter) {
    // The builds that pass the filters, by builder and branch; each branch's last activity.
    std::map<std::string, std::map<std::string, GridCell>> cells;
    std::unordered_map<std::string, WallTime> activity;
    for (const auto& entry : input.builds) {
        const auto builder = input.builders.find(entry.build.builder);
        if (builder == input.builders.end()) {
            continue; // a builder no longer in the config
        }
        if (!filter.repository.empty() && builder->second != filter.repository) {
            continue;
        }
        GridCell cell{
            entry.build.id, result_name(entry.build), entry.build.started, entry.build.finished};
        if (!matches(cell, filter)) {
            continue;
        }
        auto& last = activity[entry.branch];
        last = std::max(last, cell.started);
        // The store gives one build per builder, repository and branch; a builder that changed
        // repository may have two on one branch name: the newest wins.
        auto [slot, fresh] = cells[entry.build.builder].try_emplace(entry.branch, cell);
        if (!fresh && cell.build > slot->second.build) {
            slot->second = std::move(cell);
        }
    }

    std::set<std::string> main_branches;
    for (const auto& [repository, branch] : input.default_branches) {
        main_branches.insert(branch);
        // A column from the start, for the repositories the rows show.
        if (filter.result.empty() &&
            (filter.repository.empty() || filter.repository == repository)) {
            activity.try_emplace(branch, WallTime{});
        }
    }
    Grid grid;
    for (const auto& [branch, last] : activity) {
        grid.branches.push_back(branch);
    }
    std::ranges::sort(grid.branches, [&](const std::string& a, const std::string& b) {
        const bool main_a = main_branches.contains(a);
        const bool main_b = main_branches.contains(b);
        if (main_a != main_b) {
            return main_a;
        }
        if (!main_a) {
            const auto when_a = activity.at(a);
            const auto when_b = activity.at(b);
            if (when_a != when_b) {
                return when_a > when_b;
            }
        }
        return a < b;
    });
    if (grid.branches.size() > filter.max_branches) {
        grid.hidden_branches = grid.branches.size() - filter.max_branches;
        grid.branches.resize(filter.max_branches);
    }

    for (const auto& [builder, repository] : input.builders) {
        if (!filter.repository.empty() && repository != filter.repository) {
            continue;
        }
        GridRow row{builder, repository, input.failing.contains(builder), {}};
        row.cells.reserve(grid.branches.size());
        const auto found = cells.find(builder);
        bool any = false;
        for (const auto& branch : grid.branches) {
            std::optional<GridCell> cell;
            if (found != cells.end()) {
                if (const auto it = found->second.find(branch); it != found->second.end()) {
                    cell = it->second;
                    any = true;
                }
            }
            row.cells.push_back(std::move(cell));
        }
        if (!any && !filter.result.empty()) {
            continue; // a result filter shows only the builders with such a result
        }
        (row.failing ? grid.failing : grid.rows).push_back(std::move(row));
    }
    return grid;
}

std::string age_text(WallTime then, WallTime now) {
    const auto seconds = std::max<std::int64_t>(
        0, std::chrono::duration_cast<std::chrono::seconds>(now - then).count());
    if (seconds < 60) {
        return "<1m"; // minutes at most: a page whose ages tick each second never answers 304
    }
    if (seconds < 3600) {
        return fmt::format("{}m", seconds / 60);
    }
    if (seconds < 86400) {
        return fmt::format("{}h", seconds / 3600);
    }
    return fmt::format("{}d", seconds / 86400);
}

std::string duration_text(std::chrono::seconds duration) {
    const auto seconds = std::max<std::int64_t>(0, duration.count());
    if (seconds < 60) {
        return fmt::format("{}s", seconds);
    }
    if (seconds < 3600) {
        return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
    }
    return fmt::format("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60);
}

} // namespace ci::web
