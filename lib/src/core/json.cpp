#include "core/json.h"

#include <fmt/format.h>
#include <rapidjson/error/en.h>

namespace ci::json {

namespace {

// Iterative: RapidJSON's recursive descent uses stack in proportion to the nesting, and
// too_deep() alone would leave that to one check. Full precision: the store's own JSON reads
// back exactly as written.
constexpr unsigned parse_flags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseFullPrecisionFlag;
// For JSON from outside (parse_object: webhooks, API bodies, worker lines, answers of other
// services; the config's JSON form; the wheelhouse manifest, downloaded): no full precision.
// RapidJSON 1.1.0's full-precision strtod has undefined behaviour on numbers such as "-0e91"
// (clz(0), a shift by more than 63, and a read past its table of cached powers of ten), found by
// the json and webhook fuzz targets. None of those readers uses a fractional number; the normal
// path is exact for the short decimals people write.
constexpr unsigned outside_parse_flags = rapidjson::kParseIterativeFlag;

std::optional<Refusal> check_depth(std::string_view text) {
    if (const auto offset = too_deep(text)) {
        return Refusal{fmt::format("nested deeper than {} arrays and objects", max_depth), *offset};
    }
    return std::nullopt;
}

std::expected<rapidjson::Document, Refusal> finish(rapidjson::Document document) {
    if (document.HasParseError()) {
        return std::unexpected(Refusal{rapidjson::GetParseError_En(document.GetParseError()),
                                       document.GetErrorOffset()});
    }
    return document;
}

Result<rapidjson::Document> as_result(std::expected<rapidjson::Document, Refusal> parsed) {
    if (!parsed) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} (byte {})", parsed.error().reason, parsed.error().offset));
    }
    return std::move(*parsed);
}

} // namespace

std::optional<std::size_t> too_deep(std::string_view text, std::size_t limit) {
    std::size_t depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') {
                ++i; // an escaped character never ends the string
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) {
                return i;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return std::nullopt;
}

std::expected<rapidjson::Document, Refusal> parse_document(std::string_view text, Numbers numbers) {
    if (auto refused = check_depth(text)) {
        return std::unexpected(std::move(*refused));
    }
    rapidjson::Document document;
    if (numbers == Numbers::Exact) {
        document.Parse<parse_flags>(text.data(), text.size());
    } else {
        document.Parse<outside_parse_flags>(text.data(), text.size());
    }
    return finish(std::move(document));
}

Result<rapidjson::Document> parse(std::string_view text) {
    return as_result(parse_document(text));
}

Result<rapidjson::Document> parse_in_place(std::string& text) {
    if (auto refused = check_depth(text)) {
        return as_result(std::unexpected(std::move(*refused)));
    }
    rapidjson::Document document;
    document.ParseInsitu<outside_parse_flags>(text.data());
    return as_result(finish(std::move(document)));
}

Result<rapidjson::Document> parse_object(std::string_view text) {
    if (auto refused = check_depth(text)) {
        return as_result(std::unexpected(std::move(*refused)));
    }
    rapidjson::Document parsed;
    parsed.Parse<outside_parse_flags>(text.data(), text.size());
    auto document = as_result(finish(std::move(parsed)));
    if (document && !document->IsObject()) {
        return fail(ErrorCode::InvalidArgument, "not a JSON object");
    }
    return document;
}

Result<std::optional<std::string>> string_member(const rapidjson::Value& object,
                                                 std::string_view key) {
    if (!object.IsObject()) {
        return std::optional<std::string>();
    }
    const rapidjson::Value name(
        rapidjson::StringRef(key.data(), static_cast<rapidjson::SizeType>(key.size())));
    const auto member = object.FindMember(name);
    if (member == object.MemberEnd() || member->value.IsNull()) {
        return std::optional<std::string>();
    }
    if (!member->value.IsString()) {
        return fail(ErrorCode::InvalidArgument, fmt::format("\"{}\" is not a string", key));
    }
    return std::optional<std::string>(
        std::in_place, member->value.GetString(), member->value.GetStringLength());
}

std::string text_or_empty(const rapidjson::Value& object, std::string_view key) {
    auto found = string_member(object, key);
    return found ? found->value_or(std::string()) : std::string();
}

} // namespace ci::json
