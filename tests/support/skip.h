#pragma once

// Skipping loudly: a test that cannot run here (a peer server is not installed) says why on
// standard error and makes its executable exit 77, which meson counts as SKIP, never as a pass.

#include <string>

namespace ci::test {

/// Prints "SKIP: <reason>" and marks this run as skipped. The test case should return after it.
void skip(const std::string& reason);

/// True when some test case of this run called skip().
[[nodiscard]] bool skipped();

} // namespace ci::test
