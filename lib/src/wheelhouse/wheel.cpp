#include "ci/wheelhouse/wheel.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <tuple>

#include <fmt/format.h>

#include "core/ascii.h"

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

bool all_digits(std::string_view text) {
    return !text.empty() && std::ranges::all_of(text, [](char c) { return c >= '0' && c <= '9'; });
}

bool valid_name_part(std::string_view part) {
    return !part.empty() && std::ranges::all_of(part, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.';
    });
}

} // namespace

std::strong_ordering operator<=>(const Version& a, const Version& b) {
    // packaging's comparison key, compared in place: sorting thousands of versions must not
    // allocate per comparison.
    if (const auto order = a.epoch <=> b.epoch; std::is_neq(order)) {
        return order;
    }
    // Release numbers, trailing zeros ignored (1.0 == 1.0.0): compared as if padded with zeros.
    for (std::size_t i = 0; i < std::max(a.release.size(), b.release.size()); ++i) {
        const std::uint64_t x = i < a.release.size() ? a.release[i] : 0;
        const std::uint64_t y = i < b.release.size() ? b.release[i] : 0;
        if (const auto order = x <=> y; std::is_neq(order)) {
            return order;
        }
    }
    // A dev release of a final release (1.0.dev1) sorts before its pre-releases; no pre-release
    // sorts after them.
    const auto pre_key = [](const Version& v) {
        if (v.pre) {
            return std::tuple{0, static_cast<int>(v.pre->kind), v.pre->number};
        }
        return std::tuple{(!v.post && v.dev) ? -1 : 1, 0, std::uint64_t{0}};
    };
    if (const auto order = pre_key(a) <=> pre_key(b); std::is_neq(order)) {
        return order;
    }
    // No post release sorts first; no dev release sorts last.
    const auto post_key = [](const Version& v) {
        return v.post ? std::pair{0, *v.post} : std::pair{-1, std::uint64_t{0}};
    };
    if (const auto order = post_key(a) <=> post_key(b); std::is_neq(order)) {
        return order;
    }
    const auto dev_key = [](const Version& v) {
        return v.dev ? std::pair{0, *v.dev} : std::pair{1, std::uint64_t{0}};
    };
    if (const auto order = dev_key(a) <=> dev_key(b); std::is_neq(order)) {
        return order;
    }
    // No local label sorts first; segment by segment, alphanumeric before numeric.
    for (std::size_t i = 0; i < std::min(a.local.size(), b.local.size()); ++i) {
        const auto* x = std::get_if<std::uint64_t>(&a.local[i]);
        const auto* y = std::get_if<std::uint64_t>(&b.local[i]);
        if ((x == nullptr) != (y == nullptr)) {
            return x == nullptr ? std::strong_ordering::less : std::strong_ordering::greater;
        }
        const auto order =
            x != nullptr ? *x <=> *y
                         : std::get<std::string>(a.local[i]) <=> std::get<std::string>(b.local[i]);
        if (std::is_neq(order)) {
            return order;
        }
    }
    return a.local.size() <=> b.local.size();
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
        constexpr std::array<std::string_view, 3> labels = {"a", "b", "rc"};
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

    // Consumes `word` (case-insensitive) if it is next.
    bool word(std::string_view w) {
        if (!ascii_iequals(text.substr(at, w.size()), w)) {
            return false;
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
    if (ascii_lower(in.peek()) == 'v') {
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
        constexpr std::array kinds = {Version::PreKind::Alpha,
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
            const std::string segment = ascii_lower(trimmed.substr(start, in.at - start));
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
        out += ascii_lower(c);
    }
    if (separator) {
        out += '-'; // a trailing separator run stays one '-', as re.sub does
    }
    return out;
}

} // namespace ci::wheelhouse
