#pragma once

// The schema walker's tools: typed reads from a YAML tree that never throw and report every
// problem as a Diagnostic with origin, line, column and key path. Both the YAML loader and the
// JSON loader (which converts its DOM to a YAML tree first) check through these.

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <ci/config/config.h>
#include <ci/config/load.h>
#include <ci/core/suggest.h>

namespace ci::config::detail {

/// Collects diagnostics for one text.
class Reader {
public:
    Reader(std::string origin, std::vector<Diagnostic>& out)
        : origin_(std::move(origin)), out_(out) {}

    void error(const YAML::Node& at, std::string path, std::string message);
    void warning(const YAML::Node& at, std::string path, std::string message);
    [[nodiscard]] bool has_errors() const noexcept { return errors_ > 0; }
    [[nodiscard]] const std::string& origin() const noexcept { return origin_; }

    // Scalar reads. Each reports a type error at `at` and returns nullopt when the value does not
    // convert. Null values are the callers' business (Fields handles them).
    std::optional<std::string> string(const YAML::Node& at, const std::string& path);
    std::optional<std::int64_t>
    integer(const YAML::Node& at, const std::string& path, std::int64_t min, std::int64_t max);
    std::optional<double> number(const YAML::Node& at, const std::string& path);
    std::optional<bool> boolean(const YAML::Node& at, const std::string& path);
    std::optional<Duration> duration(const YAML::Node& at, const std::string& path);
    std::optional<std::vector<std::string>> string_list(const YAML::Node& at,
                                                        const std::string& path);
    std::optional<std::map<std::string, std::string>> string_map(const YAML::Node& at,
                                                                 const std::string& path);

private:
    void
    add(Diagnostic::Severity severity, const YAML::Node& at, std::string path, std::string message);

    std::string origin_;
    std::vector<Diagnostic>& out_;
    int errors_ = 0;
};

/// One key of a mapping, with the nodes that carry its position and its value.
struct Entry {
    std::string key;
    YAML::Node key_node;
    YAML::Node value;
};

/// Child key path: "a.b" + "c" -> "a.b.c"; "" + "c" -> "c".
[[nodiscard]] std::string join_path(std::string_view parent, std::string_view key);

/// The closest of `candidates` to `word` when it is close enough to be a likely typo.
using ci::closest_match;

/// The entries of a mapping node, in order. Reports a node that is not a mapping (null counts as
/// empty), non-scalar keys, and duplicate keys (the first one wins).
[[nodiscard]] std::optional<std::vector<Entry>>
mapping_entries(Reader& reader, const YAML::Node& node, const std::string& path);

/// The keys of one mapping, checked against the keys the schema allows there (an unknown key is
/// an error with a "did you mean"), with typed reads that leave defaults in place when a key is
/// absent.
class Fields {
public:
    Fields(Reader& reader,
           const YAML::Node& node,
           std::string path,
           std::initializer_list<std::string_view> allowed);

    /// False when the node was not a mapping (the error is reported).
    [[nodiscard]] bool valid() const noexcept { return valid_; }
    [[nodiscard]] const YAML::Node& node() const noexcept { return node_; }
    [[nodiscard]] const std::string& path() const noexcept { return path_; }
    [[nodiscard]] std::string path(std::string_view key) const { return join_path(path_, key); }

    /// The entry for `key`, or nullptr.
    [[nodiscard]] const Entry* find(std::string_view key) const;
    /// True when `key` is present with a non-null value.
    [[nodiscard]] bool has(std::string_view key) const;
    /// Reports `key` as missing unless it is present with a non-null value.
    bool require(std::string_view key);

    // Typed reads. Absent or null: `out` keeps its default (optional<T> becomes nullopt on null,
    // maps become empty on null). Present but wrong: an error, `out` unchanged.
    void read(std::string_view key, std::string& out);
    void read(std::string_view key, std::optional<std::string>& out);
    void read(std::string_view key, bool& out);
    void read(std::string_view key, int& out, int min, int max);
    void read(std::string_view key, std::uint16_t& out);
    void read(std::string_view key, std::optional<double>& out);
    void read(std::string_view key, Duration& out);
    void read(std::string_view key, std::optional<Duration>& out);
    void read(std::string_view key, std::vector<std::string>& out);
    void read(std::string_view key, std::map<std::string, std::string>& out);

    /// Reports each present key of `keys` as not valid here, saying `why`.
    void forbid(std::initializer_list<std::string_view> keys, std::string_view why) {
        forbid(std::span(keys.begin(), keys.size()), why);
    }
    void forbid(std::span<const std::string_view> keys, std::string_view why);

private:
    Reader& reader_;
    YAML::Node node_;
    std::string path_;
    std::vector<Entry> entries_;
    bool valid_ = false;
};

} // namespace ci::config::detail
