#pragma once

// A terminal's output (a build step's log) as HTML lines: what a terminal would finally show of
// each line, with its colours, and nothing a browser could run. A pure core: no I/O, no clock.
//
// What it keeps, and how:
// - SGR (ESC [ ... m): colours 30-37, 90-97, 40-47, 100-107, 38;5;N, 48;5;N, 38;2;R;G;B and
//   48;2;R;G;B (24-bit colours map to the nearest of the 256 xterm colours, so that every colour
//   is a CSS class and pages need no inline styles), 39/49 (default colours), bold (1), faint
//   (2), italic (3), underline (4), 22/23/24 and reset (0 or none). Other attributes are ignored.
// - Within a line: `\r` (back to column 0), `\b`, ESC [ n C / D / G (cursor right, left, to a
//   column) and ESC [ n K (erase in line) move over and overwrite the cells of the line, as a
//   terminal does: a progress line "10%\r20%\r100%" shows "100%".
// - Everything else is dropped: cursor moves to other lines, screen clears, OSC (up to BEL or
//   ESC \), DCS/SOS/PM/APC strings, charset selections, other C0 controls and DEL. A control
//   sequence longer than max_sequence_bytes is consumed whole and ignored (a log of a million
//   SGR parameters costs a counter, not memory). `\n` always ends a line, even inside an
//   unterminated escape sequence, so the line numbers are those of the raw log (`grep -n`).
// - Text is HTML-escaped; ill-formed UTF-8 becomes U+FFFD, one per maximal subpart (as
//   core/utf8.h and Python's errors="replace"). A line keeps at most max_columns cells; the
//   rest is counted and shown as a note.
// - State (escape sequence, UTF-8 sequence, style, the line so far) carries from one feed() to
//   the next: a log may be fed in chunks cut anywhere.

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ci::web {

/// The text attributes a terminal applies to what it prints (SGR state).
struct AnsiStyle {
    /// -1: the default colour; 0-255: an xterm palette index.
    std::int16_t fg = -1;
    std::int16_t bg = -1;
    bool bold = false;
    bool faint = false;
    bool italic = false;
    bool underline = false;

    friend bool operator==(const AnsiStyle&, const AnsiStyle&) = default;

    /// The SGR parameters that set this style from the default ("" for the default,
    /// "1;38;5;196" for bold red): what a cursor carries (LogCursor in the master).
    [[nodiscard]] std::string sgr() const;
    /// The style `params` (as sgr() writes them, or any SGR parameters) sets from the default;
    /// nullopt when `params` holds anything but digits and ';' or is longer than
    /// max_sequence_bytes.
    [[nodiscard]] static std::optional<AnsiStyle> from_sgr(std::string_view params);
    /// The CSS classes of this style ("fg-1 bold"), "" for the default.
    [[nodiscard]] std::string classes() const;
};

/// The CSS that gives the classes of AnsiStyle::classes() their colours (the xterm palette).
[[nodiscard]] std::string ansi_stylesheet();

/// Renders a terminal log as HTML, line by line. Not thread-safe (one per reader); cheap to
/// copy (a copy carries the whole state).
class AnsiHtml {
public:
    /// Receives each finished line: its number and its HTML (no newline, no enclosing element).
    using LineSink = std::function<void(std::int64_t number, std::string_view html)>;

    static constexpr std::size_t max_sequence_bytes = 256;
    static constexpr std::size_t max_columns = 16384;

    /// Starts at line `first_line` in style `style` (a cursor's, when resuming a log mid-way).
    explicit AnsiHtml(std::int64_t first_line = 1, AnsiStyle style = {});

    /// Renders `text`, handing each line it finishes to `sink`.
    void feed(std::string_view text, const LineSink& sink);
    /// Reads `text` without rendering it: the style, escape state and line number move on, the
    /// characters are not kept. Much faster than feed(); for the part of a log before what is
    /// shown. The line in progress after a skip() is shown from where skip() ended.
    void skip(std::string_view text);
    /// The text ended: the line in progress, when it has anything, goes to `sink` (a log that
    /// does not end with a newline still has that last line).
    void finish(const LineSink& sink);

    /// The HTML of the line in progress (what a terminal shows of it so far); "" when empty.
    [[nodiscard]] std::string partial_html() const;
    /// True when the line in progress is empty and no sequence is half read (at the start, or
    /// right after `\n`, or after escape sequences there): line() and style() then say all that
    /// a reader resuming here needs.
    [[nodiscard]] bool at_line_start() const;
    /// The number of the line in progress (the next one to finish).
    [[nodiscard]] std::int64_t line() const { return line_; }
    /// The current style.
    [[nodiscard]] const AnsiStyle& style() const { return style_; }

private:
    enum class State : std::uint8_t {
        Ground,
        Escape,          // after ESC
        EscIntermediate, // ESC then 0x20-0x2f: up to a final byte
        Csi,             // ESC [
        Osc,             // ESC ]: up to BEL or ESC backslash
        OscEscape,       // ESC inside an OSC
        String,          // DCS, SOS, PM, APC: up to ESC backslash
        StringEscape,    // ESC inside one of those
    };
    struct Cell {
        std::array<char, 4> bytes{};
        std::uint8_t size = 0;
        AnsiStyle style;
    };

    void step(unsigned char byte, const LineSink* sink);
    void ground(unsigned char byte, const LineSink* sink);
    void utf8(unsigned char byte, const LineSink* sink);
    void flush_utf8();
    void put(std::string_view bytes);
    void end_line(const LineSink* sink);
    void csi_dispatch(unsigned char final_byte);
    void apply_sgr(std::string_view params);
    [[nodiscard]] std::size_t csi_number(std::size_t fallback) const;

    std::int64_t line_;
    AnsiStyle style_;
    State state_ = State::Ground;
    bool render_ = true;        // false during skip()
    bool skipped_text_ = false; // skip() read text on the line in progress
    std::string sequence_;      // a CSI's parameter and intermediate bytes
    bool sequence_too_long_ = false;
    // A UTF-8 sequence being read: its bytes so far, how many it needs, and the range the next
    // byte must be in.
    std::array<char, 4> utf8_{};
    std::uint8_t utf8_size_ = 0;
    std::uint8_t utf8_needed_ = 0;
    unsigned char utf8_low_ = 0x80;
    unsigned char utf8_high_ = 0xbf;
    std::vector<Cell> cells_; // the line in progress
    std::size_t cursor_ = 0;  // its column
    std::size_t cut_ = 0;     // characters beyond max_columns, dropped
};

/// Every line of a log given whole, rendered as AnsiHtml renders them, each with its number.
/// For tests and small logs; the master renders stored logs page by page.
[[nodiscard]] std::vector<std::pair<std::int64_t, std::string>> ansi_lines(std::string_view log);

} // namespace ci::web
