#include "master/deliveries.h"

namespace ci::master {

Deliveries::Seen Deliveries::begin(const std::string& id) {
    const std::lock_guard lock(mutex_);
    if (stored_.contains(id)) {
        return Seen::Stored;
    }
    return in_flight_.insert(id).second ? Seen::New : Seen::InFlight;
}

void Deliveries::stored(const std::string& id) {
    const std::lock_guard lock(mutex_);
    in_flight_.erase(id);
    remember_locked(id);
}

void Deliveries::forget(const std::string& id) {
    const std::lock_guard lock(mutex_);
    in_flight_.erase(id);
}

void Deliveries::load(const std::vector<std::string>& ids) {
    const std::lock_guard lock(mutex_);
    for (const auto& id : ids) {
        remember_locked(id);
    }
}

void Deliveries::remember_locked(const std::string& id) {
    if (stored_.insert(id).second) {
        order_.push_back(id);
        if (order_.size() > capacity_) {
            stored_.erase(order_.front());
            order_.pop_front();
        }
    }
}

} // namespace ci::master
