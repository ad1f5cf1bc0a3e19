#include "ci/core/clock.h"

namespace ci {

const SystemClock& SystemClock::instance() noexcept {
    static const SystemClock clock;
    return clock;
}

} // namespace ci
