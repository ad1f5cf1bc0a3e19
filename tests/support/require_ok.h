#pragma once

// REQUIRE_OK / CHECK_OK: assert that a ci::Result holds a value, and print the error's message
// when it does not (libgit2's cl_git_pass prints git_error_last() the same way).

#include <doctest/doctest.h>

#include <ci/core/error.h>

#define CI_RESULT_ERROR_TEXT(result) ((result) ? std::string() : (result).error().to_string())

#define REQUIRE_OK(expr)                                                                           \
    do {                                                                                           \
        const auto& ci_require_ok_result_ = (expr);                                                \
        INFO("error: ", CI_RESULT_ERROR_TEXT(ci_require_ok_result_));                              \
        REQUIRE(ci_require_ok_result_.has_value());                                                \
    } while (false)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        const auto& ci_check_ok_result_ = (expr);                                                  \
        INFO("error: ", CI_RESULT_ERROR_TEXT(ci_check_ok_result_));                                \
        CHECK(ci_check_ok_result_.has_value());                                                    \
    } while (false)
