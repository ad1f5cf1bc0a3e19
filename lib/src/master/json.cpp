#include "master/json.h"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "core/utf8.h"

namespace ci::master {

namespace {
rapidjson::SizeType size_of(std::string_view text) {
    return static_cast<rapidjson::SizeType>(text.size());
}
} // namespace

Json& Json::key(std::string_view k) {
    writer_.Key(k.data(), size_of(k));
    return *this;
}

Json& Json::str(std::string_view v) {
    // Text is made valid UTF-8 where it comes in (webhooks, forced reasons); this catches what
    // came another way (a worker's step names) or was stored before that, so that every answer
    // is valid JSON for a strict decoder.
    if (first_invalid_utf8(v)) {
        const auto valid = to_valid_utf8(std::string(v));
        writer_.String(valid.data(), size_of(valid));
    } else {
        writer_.String(v.data(), size_of(v));
    }
    return *this;
}

Json& Json::field(std::string_view k, std::int64_t v) {
    key(k);
    writer_.Int64(v);
    return *this;
}

Json& Json::field(std::string_view k, bool v) {
    key(k);
    writer_.Bool(v);
    return *this;
}

Json& Json::null(std::string_view k) {
    key(k);
    writer_.Null();
    return *this;
}

Json& Json::time(std::string_view k, std::optional<WallTime> t) {
    if (!t) {
        return null(k);
    }
    return field(
        k, fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(*t)));
}

Json& Json::strings(std::string_view k, const std::vector<std::string>& values) {
    key(k);
    writer_.StartArray();
    for (const auto& v : values) {
        str(v);
    }
    writer_.EndArray();
    return *this;
}

Json& Json::strings(std::string_view k, const std::map<std::string, std::string>& values) {
    key(k);
    writer_.StartObject();
    for (const auto& [name, value] : values) {
        key(name).str(value);
    }
    writer_.EndObject();
    return *this;
}

Json& Json::ids(std::string_view k, const std::vector<std::int64_t>& values) {
    key(k);
    writer_.StartArray();
    for (const auto v : values) {
        writer_.Int64(v);
    }
    writer_.EndArray();
    return *this;
}

Json& Json::begin() {
    writer_.StartObject();
    return *this;
}

Json& Json::end() {
    writer_.EndObject();
    return *this;
}

Json& Json::begin_array(std::string_view k) {
    key(k);
    writer_.StartArray();
    return *this;
}

Json& Json::end_array() {
    writer_.EndArray();
    return *this;
}

http::ServerResponse json_response(int status, std::string body) {
    http::ServerResponse response;
    response.status = status;
    response.body = std::move(body);
    response.body += '\n';
    return response;
}

http::ServerResponse error_response(int status, std::string_view message) {
    return one_field(status, "error", message);
}

http::ServerResponse one_field(int status, std::string_view key, std::string_view value) {
    Json json;
    json.begin().field(key, value).end();
    return json_response(status, json.text());
}

} // namespace ci::master
