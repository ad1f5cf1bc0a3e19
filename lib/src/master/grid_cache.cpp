#include "master/grid_cache.h"

#include "master/ui.h"

namespace ci::master {

GridCache::Write::Write(GridCache* cache) : cache_(cache) {
    if (cache_ != nullptr) {
        cache_->begin_write();
    }
}

GridCache::Write::~Write() {
    if (cache_ != nullptr) {
        cache_->end_write();
    }
}

void GridCache::begin_write() {
    const std::lock_guard lock(mutex_);
    ++writing_;
    ++generation_;
    cached_.reset();
}

void GridCache::end_write() {
    const std::lock_guard lock(mutex_);
    --writing_;
    ++generation_;
}

Result<std::shared_ptr<const web::GridInput>> GridCache::input(store::Store& store) {
    std::uint64_t generation = 0;
    bool keep = false;
    {
        const std::lock_guard lock(mutex_);
        if (cached_ && writing_ == 0 && cached_generation_ == generation_) {
            ++counts_.hits;
            return cached_;
        }
        ++counts_.misses;
        generation = generation_;
        keep = writing_ == 0;
    }
    auto read = grid_input(config_, store);
    if (!read) {
        return fail(read.error());
    }
    auto input = std::make_shared<const web::GridInput>(std::move(*read));
    const std::lock_guard lock(mutex_);
    // Kept only when no write began or ended while it was read: then it is what the store held.
    if (keep && writing_ == 0 && generation_ == generation) {
        cached_ = input;
        cached_generation_ = generation;
    }
    return input;
}

Result<std::shared_ptr<const web::Grid>> GridCache::grid(store::Store& store,
                                                         const web::GridFilter& filter) {
    auto source = input(store);
    if (!source) {
        return fail(source.error());
    }
    {
        const std::lock_guard lock(mutex_);
        if (grid_ && grid_input_ == *source && grid_filter_ == filter) {
            return grid_;
        }
    }
    auto made = std::make_shared<const web::Grid>(web::make_grid(**source, filter));
    const std::lock_guard lock(mutex_);
    if (cached_ == *source) {
        grid_ = made;
        grid_input_ = *source;
        grid_filter_ = filter;
    }
    return made;
}

GridCache::Counts GridCache::counts() const {
    const std::lock_guard lock(mutex_);
    return counts_;
}

} // namespace ci::master
