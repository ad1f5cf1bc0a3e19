#pragma once

// JSON bodies of the master's HTTP answers (RapidJSON's writer: escaping is its job).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/core/clock.h>
#include <ci/http/server.h>

namespace ci::master {

/// A JSON text under construction, written in order: begin(), field()..., end().
class Json {
public:
    Json() : writer_(buffer_) {}
    Json& key(std::string_view k);
    Json& str(std::string_view v);
    Json& field(std::string_view k, std::string_view v) { return key(k).str(v); }
    Json& field(std::string_view k, const char* v) { return key(k).str(v); }
    Json& field(std::string_view k, const std::string& v) { return key(k).str(v); }
    Json& field(std::string_view k, std::int64_t v);
    Json& field(std::string_view k, int v) { return field(k, std::int64_t{v}); }
    Json& field(std::string_view k, bool v);
    Json& null(std::string_view k);
    /// An ISO 8601 UTC time to the second ("2026-11-30T07:00:00Z"), or null.
    Json& time(std::string_view k, std::optional<WallTime> t);
    Json& strings(std::string_view k, const std::vector<std::string>& values);
    /// An object of strings, by name (a build's properties).
    Json& strings(std::string_view k, const std::map<std::string, std::string>& values);
    Json& ids(std::string_view k, const std::vector<std::int64_t>& values);
    Json& begin();
    Json& end();
    Json& begin_array(std::string_view k);
    Json& end_array();
    [[nodiscard]] std::string text() const { return {buffer_.GetString(), buffer_.GetSize()}; }

private:
    rapidjson::StringBuffer buffer_;
    rapidjson::Writer<rapidjson::StringBuffer> writer_;
};

/// A JSON answer: `body` and a newline.
[[nodiscard]] http::ServerResponse json_response(int status, std::string body);
/// `{"error": message}`.
[[nodiscard]] http::ServerResponse error_response(int status, std::string_view message);
/// `{key: value}` as a one-field answer.
[[nodiscard]] http::ServerResponse
one_field(int status, std::string_view key, std::string_view value);

} // namespace ci::master
