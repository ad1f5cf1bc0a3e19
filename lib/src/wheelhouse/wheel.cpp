#include "ci/wheelhouse/wheel.h"

#include <algorithm>
#include <charconv>
#include <regex>
#include <tuple>

#include <fmt/format.h>

namespace ci::wheelhouse {

namespace {

// PEP 440, appendix B: the canonical pattern, matched case-insensitively. Groups: 1 epoch,
// 2 release, 4 pre label, 5 pre number, 7 post number (the "-N" form), 8 post label, 9 post
// number, 11 dev label, 12 dev number, 13 local.
const std::regex& version_pattern() {
    static const std::regex pattern(R"(^\s*v?(?:(?:([0-9]+)!)?([0-9]+(?:\.[0-9]+)*))"
                                    R"(([-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?([0-9]+)?)?)"
                                    R"(((?:-([0-9]+))|(?:[-_.]?(post|rev|r)[-_.]?([0-9]+)?))?)"
                                    R"(([-_.]?(dev)[-_.]?([0-9]+)?)?)"
                                    R"((?:\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?)\s*$)",
                                    std::regex::ECMAScript | std::regex::icase |
                                        std::regex::optimize);
    return pattern;
}

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

Result<Version> parse_version(std::string_view text) {
    const auto invalid = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("'{}' is not a PEP 440 version{}", text, why));
    };
    std::match_results<std::string_view::const_iterator> m;
    if (!std::regex_match(text.begin(), text.end(), m, version_pattern())) {
        return invalid("");
    }
    const auto group = [&](int i) {
        return m[i].matched
                   ? std::string_view(&*m[i].first, static_cast<std::size_t>(m[i].length()))
                   : std::string_view();
    };
    const auto numeric = [&](int i) -> std::optional<std::uint64_t> {
        return m[i].matched ? number(group(i)) : std::optional<std::uint64_t>(0);
    };
    Version v;
    if (m[1].matched) {
        const auto epoch = number(group(1));
        if (!epoch) {
            return invalid(" (epoch too large)");
        }
        v.epoch = *epoch;
    }
    const std::string_view release = group(2);
    std::size_t start = 0;
    while (start <= release.size()) {
        const std::size_t end = std::min(release.find('.', start), release.size());
        const auto part = number(release.substr(start, end - start));
        if (!part) {
            return invalid(" (a release number is too large)");
        }
        v.release.push_back(*part);
        start = end + 1;
    }
    if (m[4].matched) {
        const std::string label = lower(group(4));
        const auto n = numeric(5);
        if (!n) {
            return invalid(" (pre-release number too large)");
        }
        const auto kind = (label == "a" || label == "alpha")  ? Version::PreKind::Alpha
                          : (label == "b" || label == "beta") ? Version::PreKind::Beta
                                                              : Version::PreKind::Candidate;
        v.pre = Version::Pre{kind, *n};
    }
    if (m[7].matched || m[8].matched) {
        const auto n = m[7].matched ? numeric(7) : numeric(9);
        if (!n) {
            return invalid(" (post-release number too large)");
        }
        v.post = *n;
    }
    if (m[11].matched) {
        const auto n = numeric(12);
        if (!n) {
            return invalid(" (development release number too large)");
        }
        v.dev = *n;
    }
    if (m[13].matched) {
        const std::string local = lower(group(13));
        std::size_t at = 0;
        while (at <= local.size()) {
            const std::size_t end = std::min(local.find_first_of("-_.", at), local.size());
            const std::string segment = local.substr(at, end - at);
            if (all_digits(segment)) {
                const auto n = number(segment);
                if (!n) {
                    return invalid(" (a local segment is too large)");
                }
                v.local.emplace_back(*n);
            } else {
                v.local.emplace_back(segment);
            }
            at = end + 1;
        }
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
