#include "ci/wheelhouse/wheel.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <tuple>

#include <fmt/format.h>

namespace ci::wheelhouse {

namespace {

std::optional<std::uint64_t> number(std::string_view digits) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (error != std::errc() || end != digits.data() + digits.size()) {
        return std::nullopt;
    }
    return value;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') {
            c = static_cast<char>(c - 'A' + 'a');
        }
    }
    return out;
}

bool all_digits(std::string_view text) {
    return !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

// Ranks for the parts of the ordering that may be absent: absent sorts first (Low) or last
// (High), as packaging's NegativeInfinity / Infinity do.
enum class Rank { Low = -1, Value = 0, High = 1 };

struct LocalKey {
    Rank rank;
    std::uint64_t number;
    std::string text;
    auto operator<=>(const LocalKey&) const = default;
};

auto order_key(const Version& v) {
    std::vector<std::uint64_t> release = v.release;
    while (release.size() > 1 && release.back() == 0) {
        release.pop_back();
    }
    if (release.size() == 1 && release.front() == 0) {
        release.clear();
    }
    std::tuple<Rank, int, std::uint64_t> pre{Rank::High, 0, 0};
    if (v.pre) {
        pre = {Rank::Value, static_cast<int>(v.pre->kind), v.pre->number};
    } else if (!v.post && v.dev) {
        pre = {Rank::Low, 0, 0}; // 1.0.dev1 sorts before 1.0a1
    }
    const std::pair<Rank, std::uint64_t> post =
        v.post ? std::pair{Rank::Value, *v.post} : std::pair{Rank::Low, std::uint64_t{0}};
    const std::pair<Rank, std::uint64_t> dev =
        v.dev ? std::pair{Rank::Value, *v.dev} : std::pair{Rank::High, std::uint64_t{0}};
    // No local label sorts first; numeric segments sort after alphanumeric ones.
    std::vector<LocalKey> local;
    if (v.local.empty()) {
        local.push_back(LocalKey{Rank::Low, 0, {}});
    }
    for (const auto& segment : v.local) {
        if (const auto* n = std::get_if<std::uint64_t>(&segment)) {
            local.push_back(LocalKey{Rank::Value, *n, {}});
        } else {
            local.push_back(LocalKey{Rank::Low, 0, std::get<std::string>(segment)});
        }
    }
    return std::tuple{v.epoch, std::move(release), pre, post, dev, std::move(local)};
}

bool valid_name_part(std::string_view part) {
    return !part.empty() && std::ranges::all_of(part, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.';
    });
}

} // namespace

std::strong_ordering operator<=>(const Version& a, const Version& b) {
    return order_key(a) <=> order_key(b);
}

std::string Version::to_string() const {
    std::string out;
    if (epoch != 0) {
        out += fmt::format("{}!", epoch);
    }
    for (std::size_t i = 0; i < release.size(); ++i) {
        out += fmt::format("{}{}", i > 0 ? "." : "", release[i]);
    }
    if (pre) {
        constexpr std::string_view labels[] = {"a", "b", "rc"};
        out += fmt::format("{}{}", labels[static_cast<int>(pre->kind)], pre->number);
    }
    if (post) {
        out += fmt::format(".post{}", *post);
    }
    if (dev) {
        out += fmt::format(".dev{}", *dev);
    }
    for (std::size_t i = 0; i < local.size(); ++i) {
        out += i == 0 ? '+' : '.';
        if (const auto* n = std::get_if<std::uint64_t>(&local[i])) {
            out += fmt::format("{}", *n);
        } else {
            out += std::get<std::string>(local[i]);
        }
    }
    return out;
}

namespace {

// A cursor over a version string, matching PEP 440's pattern (appendix B) by hand: the same
// language as its regular expression, case-insensitive, without a regex engine's cost.
struct VersionScanner {
    std::string_view text;
    std::size_t at = 0;

    [[nodiscard]] bool done() const { return at == text.size(); }
    [[nodiscard]] char peek(std::size_t ahead = 0) const {
        return at + ahead < text.size() ? text[at + ahead] : '\0';
    }
    static bool is_separator(char c) { return c == '-' || c == '_' || c == '.'; }
    static bool is_digit(char c) { return c >= '0' && c <= '9'; }
    static char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

    // Consumes `word` (case-insensitive) if it is next.
    bool word(std::string_view w) {
        if (text.size() - at < w.size()) {
            return false;
        }
        for (std::size_t i = 0; i < w.size(); ++i) {
            if (lower(text[at + i]) != w[i]) {
                return false;
            }
        }
        at += w.size();
        return true;
    }
    // Digits, or nullopt when none are next; `overflow` is set when they do not fit.
    std::optional<std::string_view> digits() {
        const std::size_t start = at;
        while (is_digit(peek())) {
            ++at;
        }
        if (at == start) {
            return std::nullopt;
        }
        return text.substr(start, at - start);
    }
    void separator() {
        if (is_separator(peek())) {
            ++at;
        }
    }
    // [sep] one of `labels` [sep] [digits]; returns the label's index, or -1 (nothing consumed).
    int labelled(std::initializer_list<std::string_view> labels,
                 std::optional<std::string_view>& n) {
        const std::size_t start = at;
        separator();
        int index = 0;
        for (const auto label : labels) {
            if (word(label)) {
                separator();
                n = digits();
                return index;
            }
            ++index;
        }
        at = start;
        return -1;
    }
};

} // namespace

Result<Version> parse_version(std::string_view text) {
    const auto invalid = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("'{}' is not a PEP 440 version{}", text, why));
    };
    const auto is_space = [](char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    };
    std::string_view trimmed = text;
    while (!trimmed.empty() && is_space(trimmed.front())) {
        trimmed.remove_prefix(1);
    }
    while (!trimmed.empty() && is_space(trimmed.back())) {
        trimmed.remove_suffix(1);
    }
    VersionScanner in{trimmed};
    Version v;
    const auto to_number = [&](std::optional<std::string_view> d, std::uint64_t& out) {
        if (!d) {
            out = 0;
            return true;
        }
        const auto value = number(*d);
        if (value) {
            out = *value;
        }
        return value.has_value();
    };
    if (VersionScanner::lower(in.peek()) == 'v') {
        ++in.at;
    }
    // Epoch "N!", else the first release number.
    auto first = in.digits();
    if (!first) {
        return invalid("");
    }
    if (in.peek() == '!') {
        ++in.at;
        if (!to_number(first, v.epoch)) {
            return invalid(" (epoch too large)");
        }
        first = in.digits();
        if (!first) {
            return invalid("");
        }
    }
    for (;;) {
        std::uint64_t part = 0;
        if (!to_number(first, part)) {
            return invalid(" (a release number is too large)");
        }
        v.release.push_back(part);
        if (in.peek() != '.' || !VersionScanner::is_digit(in.peek(1))) {
            break;
        }
        ++in.at;
        first = in.digits();
    }
    std::optional<std::string_view> n;
    if (const int label = in.labelled({"alpha", "a", "beta", "b", "preview", "pre", "c", "rc"}, n);
        label >= 0) {
        constexpr Version::PreKind kinds[] = {Version::PreKind::Alpha,
                                              Version::PreKind::Alpha,
                                              Version::PreKind::Beta,
                                              Version::PreKind::Beta,
                                              Version::PreKind::Candidate,
                                              Version::PreKind::Candidate,
                                              Version::PreKind::Candidate,
                                              Version::PreKind::Candidate};
        std::uint64_t value = 0;
        if (!to_number(n, value)) {
            return invalid(" (pre-release number too large)");
        }
        v.pre = Version::Pre{kinds[label], value};
    }
    // Post release: "-N", or [sep] post|rev|r [sep] [N].
    if (in.peek() == '-' && VersionScanner::is_digit(in.peek(1))) {
        ++in.at;
        std::uint64_t value = 0;
        if (!to_number(in.digits(), value)) {
            return invalid(" (post-release number too large)");
        }
        v.post = value;
    } else if (in.labelled({"post", "rev", "r"}, n) >= 0) {
        std::uint64_t value = 0;
        if (!to_number(n, value)) {
            return invalid(" (post-release number too large)");
        }
        v.post = value;
    }
    if (in.labelled({"dev"}, n) >= 0) {
        std::uint64_t value = 0;
        if (!to_number(n, value)) {
            return invalid(" (development release number too large)");
        }
        v.dev = value;
    }
    if (in.peek() == '+') {
        ++in.at;
        for (;;) {
            const std::size_t start = in.at;
            while (std::isalnum(static_cast<unsigned char>(in.peek())) != 0) {
                ++in.at;
            }
            if (in.at == start) {
                return invalid(" (an empty local segment)");
            }
            const std::string segment = lower(trimmed.substr(start, in.at - start));
            if (all_digits(segment)) {
                const auto value = number(segment);
                if (!value) {
                    return invalid(" (a local segment is too large)");
                }
                v.local.emplace_back(*value);
            } else {
                v.local.emplace_back(segment);
            }
            if (!VersionScanner::is_separator(in.peek())) {
                break;
            }
            ++in.at;
        }
    }
    if (!in.done()) {
        return invalid("");
    }
    return v;
}

Result<WheelName> parse_wheel_name(std::string_view file_name) {
    const auto invalid = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("'{}' is not a wheel file name (PEP 427): {}", file_name, why));
    };
    constexpr std::string_view suffix = ".whl";
    if (!file_name.ends_with(suffix) || file_name.size() == suffix.size()) {
        return invalid("it does not end in .whl");
    }
    const std::string_view stem = file_name.substr(0, file_name.size() - suffix.size());
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (start <= stem.size()) {
        const std::size_t end = std::min(stem.find('-', start), stem.size());
        parts.push_back(stem.substr(start, end - start));
        start = end + 1;
    }
    if (parts.size() != 5 && parts.size() != 6) {
        return invalid(fmt::format("{} dash-separated parts, not 5 or 6", parts.size()));
    }
    WheelName name;
    name.distribution = parts[0];
    name.version_text = parts[1];
    if (parts.size() == 6) {
        name.build = parts[2];
    }
    name.python = parts[parts.size() - 3];
    name.abi = parts[parts.size() - 2];
    name.platform = parts[parts.size() - 1];
    if (!valid_name_part(name.distribution)) {
        return invalid("the distribution name is empty or holds characters other than "
                       "letters, digits, '_' and '.'");
    }
    auto version = parse_version(name.version_text);
    if (!version) {
        return invalid(version.error().message);
    }
    name.version = std::move(*version);
    if (!name.build.empty() &&
        (!valid_name_part(name.build) || name.build.front() < '0' || name.build.front() > '9')) {
        return invalid("the build tag must start with a digit");
    }
    for (const auto& tag : {name.python, name.abi, name.platform}) {
        if (!valid_name_part(tag)) {
            return invalid(fmt::format("the tag '{}' is empty or holds characters other than "
                                       "letters, digits, '_' and '.'",
                                       tag));
        }
    }
    return name;
}

std::string normalize_project_name(std::string_view name) {
    std::string out;
    out.reserve(name.size());
    bool separator = false;
    for (const char c : name) {
        if (c == '-' || c == '_' || c == '.') {
            separator = true;
            continue;
        }
        if (separator) {
            out += '-';
        }
        separator = false;
        out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
    if (separator) {
        out += '-'; // a trailing separator run stays one '-', as re.sub does
    }
    return out;
}

} // namespace ci::wheelhouse
