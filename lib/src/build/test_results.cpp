#include "ci/build/test_results.h"

#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <pugixml.hpp>

#include "core/utf8.h"

namespace ci::build {

namespace {

bool named(const pugi::xml_node& node, const char* name) {
    return node.type() == pugi::node_element && std::strcmp(node.name(), name) == 0;
}

std::string test_name(const pugi::xml_node& test) {
    const std::string_view classname = test.attribute("classname").as_string();
    std::string_view name = test.attribute("name").as_string();
    if (name.empty()) {
        name = "(unnamed)";
    }
    std::string out = classname.empty() ? std::string(name) : fmt::format("{}.{}", classname, name);
    if (out.size() > max_test_name) {
        out.resize(max_test_name);
    }
    return to_valid_utf8(std::move(out)); // a cut may have split a character: it is replaced
}

void count(const pugi::xml_node& test, TestResults& out) {
    bool failed = false;
    bool error = false;
    bool skipped = false;
    for (const auto& child : test.children()) {
        failed = failed || named(child, "failure");
        error = error || named(child, "error");
        skipped = skipped || named(child, "skipped");
    }
    if (error || failed) {
        ++(error ? out.errors : out.failed);
        if (out.failed_tests.size() < max_failed_tests) {
            out.failed_tests.push_back(test_name(test));
        }
    } else if (skipped) {
        ++out.skipped;
    } else {
        ++out.passed;
    }
}

} // namespace

void TestResults::add(const TestResults& other) {
    passed += other.passed;
    failed += other.failed;
    skipped += other.skipped;
    errors += other.errors;
    for (const auto& name : other.failed_tests) {
        if (failed_tests.size() >= max_failed_tests) {
            break;
        }
        failed_tests.push_back(name);
    }
}

std::string TestResults::summary() const {
    return fmt::format(
        "{} passed, {} failed, {} skipped, {} errors", passed, failed, skipped, errors);
}

Result<TestResults> parse_junit(std::string_view xml) {
    if (xml.size() > max_junit_size) {
        return fail(
            ErrorCode::InvalidArgument,
            fmt::format("JUnit XML: {} bytes, more than the {} read", xml.size(), max_junit_size));
    }
    pugi::xml_document document;
    // No DOCTYPE processing beyond skipping it: pugixml expands no entities but the five
    // predefined ones and character references, so a hostile file cannot grow in memory.
    const auto parsed = document.load_buffer(xml.data(), xml.size(), pugi::parse_default);
    if (!parsed) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("JUnit XML: not XML: {} at offset {}",
                                parsed.description(),
                                parsed.offset));
    }
    const auto root = document.document_element();
    if (!named(root, "testsuites") && !named(root, "testsuite")) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("JUnit XML: the root element is <{}>, not <testsuites> or "
                                "<testsuite>",
                                to_valid_utf8(std::string(root.name()).substr(0, 64))));
    }
    TestResults out;
    // Depth first without recursion: a hostile file may nest elements a million deep.
    std::vector<pugi::xml_node> pending{root};
    while (!pending.empty()) {
        const auto node = pending.back();
        pending.pop_back();
        if (named(node, "testcase")) {
            count(node, out);
            continue; // a test case's children are its outcome, not more tests
        }
        // Children pushed last first, so that they are taken in document order.
        for (auto child = node.last_child(); child; child = child.previous_sibling()) {
            if (child.type() == pugi::node_element) {
                pending.push_back(child);
            }
        }
    }
    return out;
}

} // namespace ci::build
