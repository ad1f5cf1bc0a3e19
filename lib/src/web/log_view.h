#pragma once

// What the build page shows of a step's log: its last lines (or those from a line on), rendered
// by web/ansi.h with their numbers, however long the log is. A pure core: the caller reads the
// log page by page (Store::log_page, then what memory holds of a running step) and adds each
// page; LogView keeps only the pages that hold what will be shown, and reads the others with
// AnsiHtml::skip() (the style and the line numbers move on, nothing is rendered). A 40 MB log
// costs a scan, and a few hundred KB of memory, not 40 MB of HTML.
//
// Also here: LogCursor, a point of a log that a live reader resumes from (the build page's
// Server-Sent Events, master/log_output.h).

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "web/ansi.h"

namespace ci::web {

/// A point of a step's log: `offset` bytes into the log as it goes on from chunk `sequence`;
/// for HTML, a line start, with that line's number and the style there.
struct LogCursor {
    std::int64_t sequence = 0;
    std::int64_t offset = 0;
    std::int64_t line = 1;
    AnsiStyle style;

    /// "S" (a chunk) or "S.O.L.SGR" as text() writes it; nullopt for anything else (a
    /// negative or huge number, a line below 1, a style that is not SGR parameters).
    [[nodiscard]] static std::optional<LogCursor> parse(std::string_view text);
    [[nodiscard]] std::string text() const;
    friend bool operator==(const LogCursor&, const LogCursor&) = default;
};

/// What LogView shows.
struct LogLines {
    /// The lines shown, each with its number and HTML.
    std::vector<std::pair<std::int64_t, std::string>> lines;
    std::string partial;    ///< the line in progress (running steps), HTML; "" when none
    std::int64_t total = 0; ///< lines in the log (a last line without a newline counts)
    std::int64_t bytes = 0; ///< bytes of the log
    bool first_cut = false; ///< the first line shown is only its end (a line over max_bytes)
    /// The line start after the last line shown (to follow from); nullopt when what is shown
    /// has none (one line longer than max_bytes, shown from its middle).
    std::optional<LogCursor> after;
};

/// Collects a log page by page and renders the part of it that is shown. Not thread-safe.
class LogView {
public:
    /// Shows at most `max_lines` lines and `max_bytes` bytes of log text, from line `from` on
    /// (0: the last lines).
    LogView(std::size_t max_lines, std::size_t max_bytes, std::int64_t from = 0);

    /// Chunks [`first`, `next`) of the log, in order: `text`.
    void add(std::int64_t first, std::int64_t next, std::string_view text);
    /// Renders what is shown. `ended`: the log is whole (its last line, even without a newline,
    /// is a line); otherwise that line is `partial`, as a live reader will go on with it.
    [[nodiscard]] LogLines finish(bool ended) const;

private:
    struct Page {
        std::int64_t first = 0;
        std::int64_t next = 0;
        std::string text;
        AnsiHtml state; // before the page
        std::int64_t newlines = 0;
    };

    std::size_t max_lines_;
    std::size_t max_bytes_;
    std::int64_t from_;
    AnsiHtml scan_;         // after every page added
    std::deque<Page> kept_; // the newest pages (or those from line `from_` on)
    std::int64_t kept_newlines_ = 0;
    std::size_t kept_bytes_ = 0;
    std::int64_t bytes_ = 0;
};

/// The HTML of `lines` of step `step` as the build page shows them: one element per line with
/// the anchor `step-STEP-LINE` and a link to it, each line's HTML as LogView rendered it.
[[nodiscard]] std::string log_lines_html(int step, const LogLines& lines);

} // namespace ci::web
