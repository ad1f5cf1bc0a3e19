#pragma once

// The pure parts of serving the results tree (DATA_DIR/results, served read-only at
// /results/...; routes_results.cpp does the I/O): turning a request target into safe path
// segments, content types, byte ranges and directory listings. Nothing here touches the file
// system.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <ci/core/error.h>

namespace ci::master {

/// A request for something under /results, split and checked.
struct ResultsPath {
    /// The path's segments below /results, each percent-decoded once: never empty, ".", ".."
    /// and never holding '/', '\', NUL or a control character. Empty: the tree's root.
    std::vector<std::string> segments;
    bool trailing_slash = false; ///< the target's path ends in '/' (a directory's URL)
};

/// Splits a request target ("/results/a/b%20c/?x=1", as sent: not yet percent-decoded) into
/// segments below "/results". Empty segments ("a//b") are skipped. Fails with InvalidArgument,
/// naming the reason, for a target outside /results, a bad percent escape, or a segment that
/// decodes to "." or ".." or holds '/', '\', NUL or another control character (whether sent
/// encoded or not).
[[nodiscard]] Result<ResultsPath> parse_results_target(std::string_view target);

/// The Content-Type for a file name, by its extension (and the names apt's and yum's
/// repositories use: `Packages`, `Release`, `InRelease`); "application/octet-stream" when
/// unknown. Text types carry "; charset=utf-8".
[[nodiscard]] std::string_view results_content_type(std::string_view name);

/// One byte range of a file: bytes first..last, both included.
struct ByteRange {
    std::uint64_t first = 0;
    std::uint64_t last = 0;
    friend bool operator==(const ByteRange&, const ByteRange&) = default;
};

/// What a Range header asks of a file of `size` bytes.
struct RangeRequest {
    enum class Kind {
        Whole,   ///< no Range, or one that is ignored (not bytes=, several ranges, bad syntax)
        Partial, ///< 206 with `range`
        Unsatisfiable, ///< 416
    };
    Kind kind = Kind::Whole;
    ByteRange range;
};

/// Parses a Range header (RFC 9110 14.2) for one range: "bytes=0-99", "bytes=100-",
/// "bytes=-500" (the last 500 bytes). Several ranges and malformed headers are ignored (the
/// whole file is sent, as the RFC allows); a range starting at or after the end is
/// Unsatisfiable (and so is any range of an empty file).
[[nodiscard]] RangeRequest parse_range(std::string_view header, std::uint64_t size);

/// An entry of a directory listing.
struct ListingEntry {
    std::string name;
    bool directory = false;
    std::uint64_t size = 0;    ///< bytes (files only)
    std::int64_t modified = 0; ///< Unix seconds
};

/// A directory listing as a small HTML page: `url_path` (the directory's URL path, ending in
/// '/') as the title, a link to the parent unless at /results/, then one row per entry,
/// directories first, each sorted by name: the name HTML-escaped, its link percent-encoded
/// (directories with a trailing '/'), its size and its modification time (UTC).
[[nodiscard]] std::string listing_html(std::string_view url_path,
                                       std::vector<ListingEntry> entries);

/// `segment` percent-encoded for a URL path (unreserved characters kept).
[[nodiscard]] std::string percent_encode_segment(std::string_view segment);

} // namespace ci::master
