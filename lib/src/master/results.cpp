#include "master/results.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>

#include <fmt/format.h>

#include <ci/core/log.h>

#include "core/ascii.h"
#include "core/html.h"

namespace ci::master {

namespace {

constexpr std::string_view results_prefix = "/results";

Result<std::string> decode_segment(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            out.push_back(raw[i]);
            continue;
        }
        const int high = i + 2 < raw.size() ? ascii_hex_value(raw[i + 1]) : -1;
        const int low = i + 2 < raw.size() ? ascii_hex_value(raw[i + 2]) : -1;
        if (high < 0 || low < 0) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("bad percent escape in \"{}\"", log::field(raw)));
        }
        out.push_back(static_cast<char>((high << 4) | low));
        i += 2;
    }
    return out;
}

Status check_segment(const std::string& segment) {
    if (segment == "." || segment == "..") {
        return fail(ErrorCode::InvalidArgument, R"(a path segment is "." or "..")");
    }
    for (const char c : segment) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '/' || c == '\\') {
            return fail(ErrorCode::InvalidArgument, "a path segment holds '/' or '\\'");
        }
        if (byte < 0x20 || byte == 0x7f) {
            return fail(ErrorCode::InvalidArgument, "a path segment holds a control character");
        }
    }
    return {};
}

bool ends_with_ci(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() &&
           std::equal(suffix.begin(), suffix.end(), text.end() - suffix.size(), [](char a, char b) {
               const auto lower = [](char c) {
                   return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
               };
               return lower(a) == lower(b);
           });
}

std::optional<std::uint64_t> to_u64(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

} // namespace

Result<ResultsPath> parse_results_target(std::string_view target) {
    const auto query = target.find_first_of("?#");
    auto path = target.substr(0, query);
    if (!path.starts_with(results_prefix) ||
        (path.size() > results_prefix.size() && path[results_prefix.size()] != '/')) {
        return fail(ErrorCode::InvalidArgument, "not a path under /results");
    }
    path.remove_prefix(results_prefix.size());
    ResultsPath out;
    out.trailing_slash = path.ends_with('/');
    while (!path.empty()) {
        const auto slash = path.find('/');
        const auto raw = path.substr(0, slash);
        path.remove_prefix(slash == std::string_view::npos ? path.size() : slash + 1);
        if (raw.empty()) {
            continue;
        }
        auto segment = decode_segment(raw);
        if (!segment) {
            return fail(segment.error());
        }
        if (auto checked = check_segment(*segment); !checked) {
            return fail(checked.error());
        }
        out.segments.push_back(std::move(*segment));
    }
    return out;
}

std::string_view results_content_type(std::string_view name) {
    struct Type {
        std::string_view suffix;
        std::string_view type;
    };
    // Longest suffixes first (".tar.gz" before ".gz").
    static constexpr std::array types{
        Type{".tar.gz", "application/gzip"},
        Type{".html", "text/html; charset=utf-8"},
        Type{".htm", "text/html; charset=utf-8"},
        Type{".css", "text/css; charset=utf-8"},
        Type{".js", "text/javascript; charset=utf-8"},
        Type{".json", "application/json"},
        Type{".txt", "text/plain; charset=utf-8"},
        Type{".log", "text/plain; charset=utf-8"},
        Type{".xml", "application/xml"},
        Type{".svg", "image/svg+xml"},
        Type{".png", "image/png"},
        Type{".jpg", "image/jpeg"},
        Type{".gif", "image/gif"},
        Type{".gz", "application/gzip"},
        Type{".bz2", "application/x-bzip2"},
        Type{".xz", "application/x-xz"},
        Type{".zst", "application/zstd"},
        Type{".zip", "application/zip"},
        Type{".tar", "application/x-tar"},
        Type{".deb", "application/vnd.debian.binary-package"},
        Type{".rpm", "application/x-rpm"},
        Type{".whl", "application/zip"},
        Type{".md", "text/markdown; charset=utf-8"},
    };
    for (const auto& type : types) {
        if (ends_with_ci(name, type.suffix) && name.size() > type.suffix.size()) {
            return type.type;
        }
    }
    // apt's repository index files (Packages, Release, InRelease, Sources).
    if (name == "Packages" || name == "Release" || name == "InRelease" || name == "Sources") {
        return "text/plain; charset=utf-8";
    }
    return "application/octet-stream";
}

RangeRequest parse_range(std::string_view header, std::uint64_t size) {
    RangeRequest whole;
    constexpr std::string_view unit = "bytes=";
    if (!header.starts_with(unit) || header.find(',') != std::string_view::npos) {
        return whole;
    }
    header.remove_prefix(unit.size());
    const auto dash = header.find('-');
    if (dash == std::string_view::npos) {
        return whole;
    }
    const auto first_text = header.substr(0, dash);
    const auto last_text = header.substr(dash + 1);
    RangeRequest out;
    out.kind = RangeRequest::Kind::Partial;
    if (first_text.empty()) {
        // A suffix: the last N bytes.
        const auto count = to_u64(last_text);
        if (!count) {
            return whole;
        }
        if (*count == 0 || size == 0) {
            return {RangeRequest::Kind::Unsatisfiable, {}};
        }
        out.range = {size - std::min(*count, size), size - 1};
        return out;
    }
    const auto first = to_u64(first_text);
    if (!first) {
        return whole;
    }
    std::uint64_t last = size == 0 ? 0 : size - 1;
    if (!last_text.empty()) {
        const auto given = to_u64(last_text);
        if (!given || *given < *first) {
            return whole;
        }
        last = std::min(last, *given);
    }
    if (*first >= size) {
        return {RangeRequest::Kind::Unsatisfiable, {}};
    }
    out.range = {*first, last};
    return out;
}

std::string percent_encode_segment(std::string_view segment) {
    std::string out;
    for (const char c : segment) {
        const auto byte = static_cast<unsigned char>(c);
        const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~' || c == '+';
        if (unreserved) {
            out.push_back(c);
        } else {
            fmt::format_to(std::back_inserter(out), "%{:02X}", byte);
        }
    }
    return out;
}

std::string listing_html(std::string_view url_path, std::vector<ListingEntry> entries) {
    std::ranges::sort(entries, [](const ListingEntry& a, const ListingEntry& b) {
        if (a.directory != b.directory) {
            return a.directory;
        }
        return a.name < b.name;
    });
    const auto title = html_escape(url_path);
    std::string out = fmt::format("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                                  "<title>Index of {0}</title></head>\n<body>\n"
                                  "<h1>Index of {0}</h1>\n<table>\n"
                                  "<tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr>\n",
                                  title);
    if (url_path != "/results/") {
        out += "<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n";
    }
    for (const auto& entry : entries) {
        const std::string_view suffix = entry.directory ? "/" : "";
        std::array<char, 32> when{};
        const std::time_t seconds = entry.modified;
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        const auto length = std::strftime(when.data(), when.size(), "%Y-%m-%d %H:%M:%S", &utc);
        out += fmt::format("<tr><td><a href=\"{}{}\">{}{}</a></td><td>{}</td><td>{}</td></tr>\n",
                           percent_encode_segment(entry.name),
                           suffix,
                           html_escape(entry.name),
                           suffix,
                           entry.directory ? std::string("-") : std::to_string(entry.size),
                           std::string_view(when.data(), length));
    }
    out += "</table>\n</body></html>\n";
    return out;
}

} // namespace ci::master
