#pragma once

// JSON from outside (webhooks, API bodies, worker lines, S3 and instance metadata answers, and the
// store's own columns), parsed so that no text can crash the process: its nesting depth is
// checked before anything is built, the parse itself is iterative (RapidJSON's
// kParseIterativeFlag: no recursion, whatever the text), and RapidJSON's assertions throw
// json::AssertionFailed (core/rapidjson_assert.h) instead of aborting. Every place that parses
// JSON goes through here; a reader still checks each value's type before it uses it.

#include <cstddef>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

#include <rapidjson/document.h>

#include <ci/core/error.h>

namespace ci::json {

/// The deepest nesting of arrays and objects accepted. libci's own JSON nests 6 deep at most
/// (a config's builder step env); GitHub's push payloads 4.
inline constexpr std::size_t max_depth = 64;

/// The byte offset of the first '[' or '{' of `text` that opens a level deeper than `limit`
/// (brackets inside strings do not count); nullopt when there is none. Exact for JSON text; for
/// other text, at least as deep as the parser would have gone before it stopped.
[[nodiscard]] std::optional<std::size_t> too_deep(std::string_view text,
                                                  std::size_t limit = max_depth);

/// Why a text was refused, and the byte offset where.
struct Refusal {
    std::string reason; ///< "nested deeper than 64 arrays and objects", or RapidJSON's reason
    std::size_t offset = 0;
};

/// How numbers with a fraction or exponent are read.
enum class Numbers {
    /// RapidJSON's full-precision path: exact to the last bit, for libci's own JSON (the store).
    Exact,
    /// The normal path, for JSON from outside: RapidJSON 1.1.0's full-precision strtod has
    /// undefined behaviour on numbers such as "-0e91" (see json.cpp). Integers are exact either
    /// way; short decimals (0.25, 1.5) are too.
    Outside,
};

/// Parses one JSON value (nothing but white space after it): the depth first (too_deep), then
/// RapidJSON's iterative parser, with full precision for numbers unless told Numbers::Outside.
[[nodiscard]] std::expected<rapidjson::Document, Refusal>
parse_document(std::string_view text, Numbers numbers = Numbers::Exact);

/// parse_document with an ErrorCode::InvalidArgument: "<reason> (byte N)".
[[nodiscard]] Result<rapidjson::Document> parse(std::string_view text);

/// parse(), in place: strings are decoded where they lie in `text`, which must outlive the
/// document and is changed. For JSON from outside (the wheelhouse manifest, downloaded): numbers
/// as Numbers::Outside. The text ends at its first NUL byte.
[[nodiscard]] Result<rapidjson::Document> parse_in_place(std::string& text);

/// parse() of a JSON object: also fails (InvalidArgument, "not a JSON object") for a value of
/// another type. For JSON from outside: numbers are read without RapidJSON's full-precision
/// path (see json.cpp), so a fraction may differ from parse()'s in its last bit.
[[nodiscard]] Result<rapidjson::Document> parse_object(std::string_view text);

/// A string member of `object`: nullopt when `object` is no object or has no such member (or it
/// is null); a Status error (InvalidArgument "\"key\" is not a string") when it is of another
/// type.
[[nodiscard]] Result<std::optional<std::string>> string_member(const rapidjson::Value& object,
                                                               std::string_view key);

/// A string member of `object`, or "" when there is none of that name or it is not a string (for
/// readers where a value of another type means the same as none).
[[nodiscard]] std::string text_or_empty(const rapidjson::Value& object, std::string_view key);

} // namespace ci::json
