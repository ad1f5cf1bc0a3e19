// The one main() of every test executable: process-wide setup happens here once, the way
// laminar's test/main.cpp owns its setup.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cstdio>

#include <doctest/doctest.h>

#include <ci/core/log.h>
#include <ci/version.h>

#include "support/skip.h"

int main(int argc, char** argv) {
    if (auto status = ci::initialize(); !status) {
        std::fprintf(stderr, "error: %s\n", status.error().to_string().c_str());
        return 1;
    }
    // Tests that look at log output install their own sink; the rest stay quiet unless asked.
    ci::log::set_level(ci::log::Level::Warn);
    doctest::Context context(argc, argv);
    const int status = context.run();
    // meson counts exit status 77 as SKIP: a run that skipped must not look like a pass.
    if (status == 0 && ci::test::skipped()) {
        return 77;
    }
    return status;
}
