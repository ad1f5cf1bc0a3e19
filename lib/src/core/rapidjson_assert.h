#pragma once

// Force-included (`-include`, through rapidjson_dep in the top meson.build) before every source
// that may include RapidJSON. RapidJSON's assertions check how its caller uses a value
// (GetString() of a number, HasMember() of an array, operator[] of a missing member) and abort
// the process by default, in every build where NDEBUG is not set. Input from outside decides
// those types, so an assertion must never end the master: here it throws
// ci::json::AssertionFailed instead, in every build type, and the parsing edge that reads the
// input (lib/src/core/json.h) turns it into an error.

#include <stdexcept>
#include <string>

namespace ci::json {

/// A RapidJSON assertion failed: a JSON value was used as something it is not.
class AssertionFailed : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

/// Throws AssertionFailed naming `condition`. A function rather than a throw expression inside
/// the macro: RapidJSON asserts in a few noexcept functions (where any throw ends the process,
/// as the abort did), and a throw written there would be a -Wterminate warning.
[[noreturn]] inline void rapidjson_assertion_failed(const char* condition) {
    throw AssertionFailed(std::string("RapidJSON assertion failed: ") + condition);
}

} // namespace ci::json

#define RAPIDJSON_ASSERT(x)                                                                        \
    (static_cast<bool>(x) ? static_cast<void>(0) : ::ci::json::rapidjson_assertion_failed(#x))
