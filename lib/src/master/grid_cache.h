#pragma once

// The home grid's store read (Store::latest_builds, ~16 ms at 200 builders x 50 branches) and
// the last grid made of it (make_grid, ~3 ms, for the last filter asked), kept between the
// writes that can change them, so that GET / and GET /api/v1/grid between builds skip both.
//
// Staleness: every write of the builds table (a build's start, checkout and end: Dispatcher,
// Coordinator) runs inside a GridCache::Write, which bumps a generation when it begins and when
// it ends. A read uses the cache only when no such write is under way and none began since the
// cached copy was read; a read that overlapped a write is not kept. So a GET that starts after a
// build's end was committed (and so after the client could have seen it anywhere) never gets
// the grid from before it. The master holds its store alone: a write by another process (a
// second master on the same file) is not seen until the next write of this one.

#include <cstdint>
#include <memory>
#include <mutex>

#include <ci/config/config.h>
#include <ci/core/error.h>
#include <ci/store/store.h>

#include "web/grid.h"

namespace ci::master {

class GridCache {
public:
    explicit GridCache(const config::Config& config) : config_(config) {}
    GridCache(const GridCache&) = delete;
    GridCache& operator=(const GridCache&) = delete;

    /// A write that may change the builds table, from its start to its end (committed or not).
    /// `cache` may be null (nothing to invalidate).
    class Write {
    public:
        explicit Write(GridCache* cache);
        ~Write();
        Write(const Write&) = delete;
        Write& operator=(const Write&) = delete;

    private:
        GridCache* cache_;
    };

    /// The grid's input (grid_input()): the copy kept when it is still true, else read from
    /// `store` (on a reader thread) and kept when no write overlapped the read.
    [[nodiscard]] Result<std::shared_ptr<const web::GridInput>> input(store::Store& store);

    /// make_grid(input(store), filter): the grid kept when it was made of the input kept now
    /// with the same filter, else made (and kept when that input is still the one kept).
    [[nodiscard]] Result<std::shared_ptr<const web::Grid>> grid(store::Store& store,
                                                                const web::GridFilter& filter);

    /// Reads answered from the copy and from the store, for tests and bench/ui.
    struct Counts {
        std::uint64_t hits = 0;
        std::uint64_t misses = 0;
    };
    [[nodiscard]] Counts counts() const;

private:
    void begin_write();
    void end_write();

    const config::Config& config_;
    mutable std::mutex mutex_;
    std::uint64_t generation_ = 0;
    int writing_ = 0;
    std::shared_ptr<const web::GridInput> cached_;
    std::uint64_t cached_generation_ = 0;
    std::shared_ptr<const web::Grid> grid_;            // made of grid_input_ with grid_filter_
    std::shared_ptr<const web::GridInput> grid_input_; // held: never mistaken for a newer one
    web::GridFilter grid_filter_;
    Counts counts_;
};

} // namespace ci::master
