#pragma once

/// \file
/// Test results read from JUnit XML files (what pytest --junitxml, trial's subunit converters,
/// Maven Surefire and most test runners write): counts and the names of the failed tests.
/// parse_junit is pure (no I/O); the runner reads the files a step's `test_results` glob
/// matches and adds their results up.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci::build {

/// At most this many failed test names are kept (the counts go on), each cut to
/// max_test_name bytes.
inline constexpr std::size_t max_failed_tests = 100;
inline constexpr std::size_t max_test_name = 300;
/// A JUnit file larger than this is not read.
inline constexpr std::size_t max_junit_size = std::size_t{64} * 1024 * 1024;

/// Counts of test cases by outcome.
struct TestResults {
    int passed = 0;
    int failed = 0;  ///< a <failure> in the test case
    int skipped = 0; ///< a <skipped> in the test case
    int errors = 0;  ///< an <error> in the test case
    /// "classname.name" (or the name alone) of each failed or erroring test case, in document
    /// order, valid UTF-8, at most max_failed_tests.
    std::vector<std::string> failed_tests;

    [[nodiscard]] int total() const noexcept { return passed + failed + skipped + errors; }
    /// Adds `other`'s counts and names (names up to max_failed_tests).
    void add(const TestResults& other);
    /// "12 passed, 1 failed, 2 skipped, 0 errors".
    [[nodiscard]] std::string summary() const;
    friend bool operator==(const TestResults&, const TestResults&) = default;
};

/// Reads one JUnit XML document: every <testcase> under a <testsuites> or <testsuite> root (at
/// any depth), whatever the suites' own count attributes say. A test case with a <failure> is
/// failed, with an <error> an error, with a <skipped> skipped, otherwise passed; missing
/// attributes are fine (a case without a name is "(unnamed)"). Fails with InvalidArgument for
/// text that is not XML (with pugixml's reason and the offset), another root element, or more
/// than max_junit_size bytes.
[[nodiscard]] Result<TestResults> parse_junit(std::string_view xml);

} // namespace ci::build
