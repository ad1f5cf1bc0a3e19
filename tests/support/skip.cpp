#include "support/skip.h"

#include <atomic>
#include <cstdio>

namespace ci::test {

namespace {
std::atomic<bool> skip_requested{false};
}

void skip(const std::string& reason) {
    std::fprintf(stderr, "SKIP: %s\n", reason.c_str());
    skip_requested = true;
}

bool skipped() {
    return skip_requested;
}

} // namespace ci::test
