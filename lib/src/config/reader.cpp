#include "config/reader.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "core/ascii.h"
#include "core/utf8.h"

namespace ci::config::detail {

namespace {

// How a value appears in a message: quoted scalars, or the kind of node.
std::string describe(const YAML::Node& node) {
    switch (node.Type()) {
    case YAML::NodeType::Scalar:
        return fmt::format("\"{}\"", node.Scalar());
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Null:
        return "null";
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

// What makes a scalar or key unusable as text: a NUL character (a YAML "\0" or JSON "\u0000"
// escape; a command or file name would end there) or invalid UTF-8 (a YAML "\uD800" escape).
std::optional<std::string> text_problem(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) {
        return "contains a NUL character";
    }
    if (first_invalid_utf8(text)) {
        return "is not valid UTF-8";
    }
    return std::nullopt;
}

// "30s", "5m", "2h", "14d", "1h30m", "1d12h", "1h30m15s" or a bare number of seconds.
std::optional<Duration> parse_duration(std::string_view text) {
    if (text.empty()) {
        return std::nullopt;
    }
    std::int64_t total = 0;
    const char* p = text.data();
    const char* end = text.data() + text.size();
    // A bare number is seconds.
    {
        std::int64_t value = 0;
        auto [next, ec] = std::from_chars(p, end, value);
        if (ec == std::errc() && next == end) {
            return value < 0 ? std::nullopt : std::optional<Duration>(Duration(value));
        }
    }
    int last_unit = 0; // 4 = d, 3 = h, 2 = m, 1 = s: units must come in that order, once each
    while (p != end) {
        std::int64_t value = 0;
        auto [next, ec] = std::from_chars(p, end, value);
        if (ec != std::errc() || next == end || value < 0) {
            return std::nullopt;
        }
        int unit = 0;
        std::int64_t scale = 0;
        switch (*next) {
        case 'd':
            unit = 4;
            scale = 86400;
            break;
        case 'h':
            unit = 3;
            scale = 3600;
            break;
        case 'm':
            unit = 2;
            scale = 60;
            break;
        case 's':
            unit = 1;
            scale = 1;
            break;
        default:
            return std::nullopt;
        }
        if (last_unit != 0 && unit >= last_unit) {
            return std::nullopt;
        }
        last_unit = unit;
        if (value > std::numeric_limits<std::int32_t>::max()) {
            return std::nullopt;
        }
        total += value * scale;
        p = next + 1;
    }
    return Duration(total);
}

} // namespace

std::string join_path(std::string_view parent, std::string_view key) {
    if (parent.empty()) {
        return std::string(key);
    }
    return fmt::format("{}.{}", parent, key);
}

void Reader::add(Diagnostic::Severity severity,
                 const YAML::Node& at,
                 std::string path,
                 std::string message) {
    Diagnostic diagnostic;
    diagnostic.severity = severity;
    diagnostic.origin = origin_;
    if (at.IsDefined()) {
        const YAML::Mark mark = at.Mark();
        if (mark.line >= 0 && mark.column >= 0) {
            diagnostic.line = mark.line + 1;
            diagnostic.column = mark.column + 1;
        }
    }
    diagnostic.key_path = std::move(path);
    diagnostic.message = std::move(message);
    out_.push_back(std::move(diagnostic));
}

void Reader::error(const YAML::Node& at, std::string path, std::string message) {
    ++errors_;
    add(Diagnostic::Severity::Error, at, std::move(path), std::move(message));
}

void Reader::warning(const YAML::Node& at, std::string path, std::string message) {
    add(Diagnostic::Severity::Warning, at, std::move(path), std::move(message));
}

std::optional<std::string> Reader::string(const YAML::Node& at, const std::string& path) {
    if (!at.IsScalar()) {
        error(at, path, fmt::format("expected a string, got {}", describe(at)));
        return std::nullopt;
    }
    if (auto problem = text_problem(at.Scalar())) {
        error(at, path, std::move(*problem));
        return std::nullopt;
    }
    return at.Scalar();
}

std::optional<std::int64_t>
Reader::integer(const YAML::Node& at, const std::string& path, std::int64_t min, std::int64_t max) {
    if (at.IsScalar()) {
        const std::string& text = at.Scalar();
        std::int64_t value = 0;
        auto [next, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && next == text.data() + text.size()) {
            if (value < min || value > max) {
                error(at,
                      path,
                      fmt::format("expected an integer from {} to {}, got {}", min, max, value));
                return std::nullopt;
            }
            return value;
        }
    }
    error(at, path, fmt::format("expected an integer, got {}", describe(at)));
    return std::nullopt;
}

std::optional<double> Reader::number(const YAML::Node& at, const std::string& path) {
    if (at.IsScalar()) {
        const std::string& text = at.Scalar();
        double value = 0;
        auto [next, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec == std::errc() && next == text.data() + text.size() && std::isfinite(value)) {
            return value;
        }
    }
    error(at, path, fmt::format("expected a number, got {}", describe(at)));
    return std::nullopt;
}

std::optional<bool> Reader::boolean(const YAML::Node& at, const std::string& path) {
    if (at.IsScalar()) {
        // YAML 1.2 core schema spellings (the old deployment's files say True and False).
        const std::string& text = at.Scalar();
        if (text == "true" || text == "True" || text == "TRUE") {
            return true;
        }
        if (text == "false" || text == "False" || text == "FALSE") {
            return false;
        }
    }
    error(at, path, fmt::format("expected true or false, got {}", describe(at)));
    return std::nullopt;
}

std::optional<Duration> Reader::duration(const YAML::Node& at, const std::string& path) {
    if (at.IsScalar()) {
        if (auto value = parse_duration(at.Scalar())) {
            return value;
        }
    }
    error(at,
          path,
          fmt::format(
              "expected a duration such as 30s, 5m, 1h30m, 14d or a number of seconds, got {}",
              describe(at)));
    return std::nullopt;
}

std::optional<std::vector<std::string>> Reader::string_list(const YAML::Node& at,
                                                            const std::string& path) {
    if (at.IsNull()) {
        return std::vector<std::string>{};
    }
    if (!at.IsSequence()) {
        error(at, path, fmt::format("expected a list of strings, got {}", describe(at)));
        return std::nullopt;
    }
    std::vector<std::string> out;
    bool ok = true;
    for (std::size_t i = 0; i < at.size(); ++i) {
        const YAML::Node item = at[i];
        auto value = string(item, fmt::format("{}[{}]", path, i));
        if (value) {
            out.push_back(std::move(*value));
        } else {
            ok = false;
        }
    }
    if (!ok) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::map<std::string, std::string>> Reader::string_map(const YAML::Node& at,
                                                                     const std::string& path) {
    auto entries = mapping_entries(*this, at, path);
    if (!entries) {
        return std::nullopt;
    }
    std::map<std::string, std::string> out;
    bool ok = true;
    for (const auto& entry : *entries) {
        if (entry.value.IsNull()) {
            // An empty value is the empty string: "KEY:" in an env map means KEY="".
            out.emplace(entry.key, std::string());
            continue;
        }
        auto value = string(entry.value, join_path(path, entry.key));
        if (value) {
            out.emplace(entry.key, std::move(*value));
        } else {
            ok = false;
        }
    }
    if (!ok) {
        return std::nullopt;
    }
    return out;
}

std::optional<std::vector<Entry>>
mapping_entries(Reader& reader, const YAML::Node& node, const std::string& path) {
    std::vector<Entry> entries;
    if (node.IsNull()) {
        return entries;
    }
    if (!node.IsMap()) {
        reader.error(node, path, fmt::format("expected a mapping, got {}", describe(node)));
        return std::nullopt;
    }
    // Index of each key in `entries`: a mapping of many keys stays linear.
    std::unordered_map<std::string, std::size_t> seen;
    for (const auto& item : node) {
        if (!item.first.IsScalar()) {
            reader.error(item.first,
                         path,
                         fmt::format("expected a string key, got {}", describe(item.first)));
            continue;
        }
        const std::string& key = item.first.Scalar();
        if (auto problem = text_problem(key)) {
            reader.error(item.first, path, "a key " + std::move(*problem));
            continue;
        }
        const auto [duplicate, added] = seen.emplace(key, entries.size());
        if (!added) {
            const YAML::Mark first = entries[duplicate->second].key_node.Mark();
            reader.error(item.first,
                         join_path(path, key),
                         first.line >= 0 ? fmt::format("duplicate key (first defined on line {})",
                                                       first.line + 1)
                                         : std::string("duplicate key"));
            continue;
        }
        entries.push_back(Entry{key, item.first, item.second});
    }
    return entries;
}

Fields::Fields(Reader& reader,
               const YAML::Node& node,
               std::string path,
               std::initializer_list<std::string_view> allowed)
    : reader_(reader), node_(node), path_(std::move(path)) {
    auto entries = mapping_entries(reader_, node_, path_);
    if (!entries) {
        return;
    }
    valid_ = true;
    const std::vector<std::string_view> known(allowed);
    for (auto& entry : *entries) {
        if (std::ranges::find(known, std::string_view(entry.key)) != known.end()) {
            entries_.push_back(std::move(entry));
            continue;
        }
        std::string message = "unknown key";
        if (auto suggestion = closest_match(entry.key, known)) {
            message += fmt::format(" (did you mean \"{}\"?)", *suggestion);
        }
        reader_.error(entry.key_node, join_path(path_, entry.key), std::move(message));
    }
}

const Entry* Fields::find(std::string_view key) const {
    const auto it = std::ranges::find(entries_, key, &Entry::key);
    return it == entries_.end() ? nullptr : &*it;
}

bool Fields::has(std::string_view key) const {
    const Entry* entry = find(key);
    return entry != nullptr && !entry->value.IsNull();
}

bool Fields::require(std::string_view key) {
    if (!valid_) {
        return false;
    }
    if (const Entry* entry = find(key)) {
        if (entry->value.IsNull()) {
            reader_.error(entry->key_node, path(key), "needs a value");
            return false;
        }
        return true;
    }
    reader_.error(node_, path(key), "missing required key");
    return false;
}

void Fields::read(std::string_view key, std::string& out) {
    if (const Entry* entry = find(key); entry && !entry->value.IsNull()) {
        if (auto value = reader_.string(entry->value, path(key))) {
            out = std::move(*value);
        }
    }
}

void Fields::read(std::string_view key, std::optional<std::string>& out) {
    if (const Entry* entry = find(key)) {
        if (entry->value.IsNull()) {
            out.reset();
        } else if (auto value = reader_.string(entry->value, path(key))) {
            out = std::move(*value);
        }
    }
}

void Fields::read(std::string_view key, bool& out) {
    if (const Entry* entry = find(key); entry && !entry->value.IsNull()) {
        if (auto value = reader_.boolean(entry->value, path(key))) {
            out = *value;
        }
    }
}

void Fields::read(std::string_view key, int& out, int min, int max) {
    if (const Entry* entry = find(key); entry && !entry->value.IsNull()) {
        if (auto value = reader_.integer(entry->value, path(key), min, max)) {
            out = static_cast<int>(*value);
        }
    }
}

void Fields::read(std::string_view key, std::uint16_t& out) {
    if (const Entry* entry = find(key); entry && !entry->value.IsNull()) {
        // 0 asks the system for a free port (tests, benchmarks); the master prints the one it got.
        if (auto value = reader_.integer(entry->value, path(key), 0, 65535)) {
            out = static_cast<std::uint16_t>(*value);
        }
    }
}

void Fields::read(std::string_view key, std::optional<double>& out) {
    if (const Entry* entry = find(key)) {
        if (entry->value.IsNull()) {
            out.reset();
        } else if (auto value = reader_.number(entry->value, path(key))) {
            out = *value;
        }
    }
}

void Fields::read(std::string_view key, Duration& out) {
    if (const Entry* entry = find(key); entry && !entry->value.IsNull()) {
        if (auto value = reader_.duration(entry->value, path(key))) {
            out = *value;
        }
    }
}

void Fields::read(std::string_view key, std::optional<Duration>& out) {
    if (const Entry* entry = find(key)) {
        if (entry->value.IsNull()) {
            out.reset();
        } else if (auto value = reader_.duration(entry->value, path(key))) {
            out = *value;
        }
    }
}

void Fields::read(std::string_view key, std::vector<std::string>& out) {
    if (const Entry* entry = find(key)) {
        if (auto value = reader_.string_list(entry->value, path(key))) {
            out = std::move(*value);
        }
    }
}

void Fields::read(std::string_view key, std::map<std::string, std::string>& out) {
    if (const Entry* entry = find(key)) {
        if (auto value = reader_.string_map(entry->value, path(key))) {
            out = std::move(*value);
        }
    }
}

void Fields::forbid(std::span<const std::string_view> keys, std::string_view why) {
    for (const auto key : keys) {
        if (const Entry* entry = find(key)) {
            reader_.error(entry->key_node, path(key), fmt::format("not valid {}", why));
        }
    }
}

} // namespace ci::config::detail
