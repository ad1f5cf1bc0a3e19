#include "web/ansi.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "core/html.h"
#include "core/utf8.h"

namespace ci::web {

namespace {

constexpr unsigned char esc = 0x1b;

// The xterm palette: 16 system colours, a 6x6x6 cube, 24 greys.
struct Rgb {
    int r = 0;
    int g = 0;
    int b = 0;
};

constexpr std::array<Rgb, 16> system_colours = {{{0, 0, 0},
                                                 {205, 0, 0},
                                                 {0, 205, 0},
                                                 {205, 205, 0},
                                                 {0, 0, 238},
                                                 {205, 0, 205},
                                                 {0, 205, 205},
                                                 {229, 229, 229},
                                                 {127, 127, 127},
                                                 {255, 0, 0},
                                                 {0, 255, 0},
                                                 {255, 255, 0},
                                                 {92, 92, 255},
                                                 {255, 0, 255},
                                                 {0, 255, 255},
                                                 {255, 255, 255}}};
constexpr std::array<int, 6> cube_levels = {0, 95, 135, 175, 215, 255};

Rgb palette(int index) {
    if (index < 16) {
        return system_colours.at(static_cast<std::size_t>(index));
    }
    if (index < 232) {
        const int cube = index - 16;
        return {cube_levels.at(static_cast<std::size_t>(cube / 36)),
                cube_levels.at(static_cast<std::size_t>(cube / 6 % 6)),
                cube_levels.at(static_cast<std::size_t>(cube % 6))};
    }
    const int grey = 8 + (index - 232) * 10;
    return {grey, grey, grey};
}

int distance(const Rgb& a, const Rgb& b) {
    return (a.r - b.r) * (a.r - b.r) + (a.g - b.g) * (a.g - b.g) + (a.b - b.b) * (a.b - b.b);
}

// The palette index nearest to a 24-bit colour, among the cube and the greys (the system
// colours differ between terminals: a 24-bit colour never maps to them).
std::int16_t nearest_index(int r, int g, int b) {
    const auto level = [](int value) {
        int best = 0;
        for (int i = 1; i < 6; ++i) {
            if (std::abs(cube_levels.at(static_cast<std::size_t>(i)) - value) <
                std::abs(cube_levels.at(static_cast<std::size_t>(best)) - value)) {
                best = i;
            }
        }
        return best;
    };
    const Rgb wanted{r, g, b};
    const int cube = 16 + 36 * level(r) + 6 * level(g) + level(b);
    const int average = (r + g + b) / 3;
    const int grey = 232 + std::clamp((average - 3) / 10, 0, 23);
    return static_cast<std::int16_t>(
        distance(palette(grey), wanted) < distance(palette(cube), wanted) ? grey : cube);
}

// SGR parameters: numbers separated by ';' (a group may hold ':' sub-parameters, as in
// "38:2::255:0:0" or "4:3"). Empty means 0; huge values saturate. Fixed capacity, no allocation
// (a log may hold millions of SGR sequences): a CSI holds at most max_sequence_bytes, so at most
// that many / 2 + 1 groups; a group keeps its first 6 sub-parameters.
struct SgrGroup {
    std::array<int, 6> values; // set as parsed: [0, count)
    std::size_t count;
    [[nodiscard]] std::size_t size() const { return count; }
    [[nodiscard]] int front() const { return values[0]; }
    [[nodiscard]] int operator[](std::size_t i) const { return values.at(i); }
};

struct SgrGroups {
    std::array<SgrGroup, AnsiHtml::max_sequence_bytes / 2 + 2> groups; // set as parsed
    std::size_t count = 0;
    [[nodiscard]] std::size_t size() const { return count; }
    [[nodiscard]] const SgrGroup& operator[](std::size_t i) const { return groups.at(i); }
};

void sgr_groups(std::string_view params, SgrGroups& out) {
    const auto start_group = [&out] {
        auto& group = out.groups.at(out.count++);
        group.values[0] = 0;
        group.count = 1;
    };
    start_group();
    for (const char c : params) {
        auto& group = out.groups.at(out.count - 1);
        if (c == ';') {
            if (out.count < out.groups.size()) {
                start_group();
            }
        } else if (c == ':') {
            if (group.count < group.values.size()) {
                group.values.at(group.count++) = 0;
            }
        } else if (c >= '0' && c <= '9') {
            auto& value = group.values.at(group.count - 1);
            value = std::min(value * 10 + (c - '0'), 1000000);
        }
    }
}

} // namespace

std::string AnsiStyle::sgr() const {
    std::string out;
    const auto add = [&out](std::string_view part) {
        if (!out.empty()) {
            out += ';';
        }
        out += part;
    };
    if (bold) {
        add("1");
    }
    if (faint) {
        add("2");
    }
    if (italic) {
        add("3");
    }
    if (underline) {
        add("4");
    }
    if (fg >= 0) {
        add(fmt::format("38;5;{}", fg));
    }
    if (bg >= 0) {
        add(fmt::format("48;5;{}", bg));
    }
    return out;
}

std::optional<AnsiStyle> AnsiStyle::from_sgr(std::string_view params) {
    if (params.size() > AnsiHtml::max_sequence_bytes ||
        !std::ranges::all_of(params, [](char c) { return c == ';' || (c >= '0' && c <= '9'); })) {
        return std::nullopt;
    }
    AnsiHtml renderer;
    const std::string sequence = fmt::format("\x1b[{}m", params);
    renderer.skip(sequence);
    return renderer.style();
}

std::string AnsiStyle::classes() const {
    std::string out;
    const auto add = [&out](std::string_view part) {
        if (!out.empty()) {
            out += ' ';
        }
        out += part;
    };
    if (fg >= 0) {
        add(fmt::format("fg{}", fg));
    }
    if (bg >= 0) {
        add(fmt::format("bg{}", bg));
    }
    if (bold) {
        add("bold");
    }
    if (faint) {
        add("faint");
    }
    if (italic) {
        add("italic");
    }
    if (underline) {
        add("underline");
    }
    return out;
}

std::string ansi_stylesheet() {
    std::string out =
        "/* The xterm palette for web/ansi.h's classes (generated by ansi_stylesheet()). */\n"
        ".log .bold{font-weight:bold}.log .faint{opacity:.7}"
        ".log .italic{font-style:italic}.log .underline{text-decoration:underline}\n";
    for (int i = 0; i < 256; ++i) {
        const auto c = palette(i);
        out += fmt::format(".log .fg{0}{{color:#{1:02x}{2:02x}{3:02x}}}"
                           ".log .bg{0}{{background-color:#{1:02x}{2:02x}{3:02x}}}\n",
                           i,
                           c.r,
                           c.g,
                           c.b);
    }
    return out;
}

AnsiHtml::AnsiHtml(std::int64_t first_line, AnsiStyle style) : line_(first_line), style_(style) {}

void AnsiHtml::feed(std::string_view text, const LineSink& sink) {
    render_ = true;
    const auto* data = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    for (std::size_t i = 0; i < size;) {
        // The common case first: a run of printable ASCII appended at the end of the line.
        if (state_ == State::Ground && utf8_size_ == 0 && cursor_ == cells_.size()) {
            std::size_t end = i;
            while (end < size && data[end] >= 0x20 && data[end] < 0x7f &&
                   cells_.size() < max_columns) {
                Cell cell;
                cell.bytes[0] = static_cast<char>(data[end]);
                cell.size = 1;
                cell.style = style_;
                cells_.push_back(cell);
                ++end;
            }
            if (end != i) {
                cursor_ = cells_.size();
                i = end;
                continue;
            }
        }
        step(data[i], &sink);
        ++i;
    }
}

void AnsiHtml::skip(std::string_view text) {
    render_ = false;
    while (!text.empty()) {
        if (state_ == State::Ground) {
            // Only ESC and '\n' matter to what comes after: jump from one to the next.
            utf8_size_ = 0;
            const auto* found =
                static_cast<const char*>(std::memchr(text.data(), esc, text.size()));
            const std::size_t plain =
                found == nullptr ? text.size() : static_cast<std::size_t>(found - text.data());
            const auto part = text.substr(0, plain);
            const auto newlines = std::ranges::count(part, '\n');
            if (newlines > 0) {
                line_ += newlines;
                cells_.clear();
                cursor_ = 0;
                cut_ = 0;
                skipped_text_ = part.back() != '\n';
            } else if (!part.empty()) {
                skipped_text_ = true;
            }
            text.remove_prefix(plain);
            if (text.empty()) {
                break;
            }
        }
        step(static_cast<unsigned char>(text.front()), nullptr);
        text.remove_prefix(1);
    }
    render_ = true;
}

void AnsiHtml::finish(const LineSink& sink) {
    flush_utf8();
    state_ = State::Ground;
    if (!cells_.empty() || cut_ > 0 || skipped_text_) {
        end_line(&sink);
    }
}

void AnsiHtml::step(unsigned char byte, const LineSink* sink) {
    if (byte == '\n') {
        // A newline ends the line whatever was being read: an unterminated sequence cannot
        // swallow the rest of the log, and line numbers stay those of the raw text.
        flush_utf8();
        state_ = State::Ground;
        end_line(sink);
        return;
    }
    switch (state_) {
    case State::Ground:
        ground(byte, sink);
        return;
    case State::Escape:
        if (byte == '[') {
            state_ = State::Csi;
            sequence_.clear();
            sequence_too_long_ = false;
        } else if (byte == ']') {
            state_ = State::Osc;
        } else if (byte == 'P' || byte == 'X' || byte == '^' || byte == '_') {
            state_ = State::String;
        } else if (byte >= 0x20 && byte <= 0x2f) {
            state_ = State::EscIntermediate;
        } else if (byte == esc) {
            state_ = State::Escape;
        } else if (byte >= 0x30 && byte <= 0x7e) {
            state_ = State::Ground; // a two-byte sequence (ESC 7, ESC =, ...): ignored
        } else {
            state_ = State::Ground;
            ground(byte, sink);
        }
        return;
    case State::EscIntermediate:
        if (byte >= 0x30 && byte <= 0x7e) {
            state_ = State::Ground;
        } else if (byte == esc) {
            state_ = State::Escape;
        } else if (byte < 0x20 || byte > 0x7e) {
            state_ = State::Ground;
            ground(byte, sink);
        }
        return;
    case State::Csi:
        if (byte >= 0x40 && byte <= 0x7e) {
            state_ = State::Ground;
            if (!sequence_too_long_) {
                csi_dispatch(byte);
            }
        } else if (byte >= 0x20 && byte <= 0x3f) {
            if (sequence_.size() < max_sequence_bytes) {
                sequence_ += static_cast<char>(byte);
            } else {
                sequence_too_long_ = true;
            }
        } else if (byte == esc) {
            state_ = State::Escape;
        } else {
            // Not part of a CSI (a control or a non-ASCII byte): the sequence is dropped and
            // the byte read as text.
            state_ = State::Ground;
            ground(byte, sink);
        }
        return;
    case State::Osc:
        if (byte == 0x07) {
            state_ = State::Ground;
        } else if (byte == esc) {
            state_ = State::OscEscape;
        }
        return;
    case State::OscEscape:
        state_ = byte == '\\' ? State::Ground : (byte == esc ? State::OscEscape : State::Osc);
        return;
    case State::String:
        if (byte == esc) {
            state_ = State::StringEscape;
        }
        return;
    case State::StringEscape:
        state_ = byte == '\\' ? State::Ground : (byte == esc ? State::StringEscape : State::String);
        return;
    }
}

void AnsiHtml::ground(unsigned char byte, const LineSink* sink) {
    if (byte >= 0x80 || utf8_size_ > 0) {
        utf8(byte, sink);
        return;
    }
    if (byte == esc) {
        state_ = State::Escape;
    } else if (byte == '\r') {
        cursor_ = 0;
    } else if (byte == '\b') {
        cursor_ -= cursor_ > 0 ? 1 : 0;
    } else if (byte == '\t' || (byte >= 0x20 && byte < 0x7f)) {
        const char c = static_cast<char>(byte);
        put(std::string_view(&c, 1));
    }
    // Other C0 controls and DEL: dropped.
}

// Reads UTF-8 one byte at a time, so that a sequence may be cut between two feeds. Each
// ill-formed part becomes one U+FFFD, as core/utf8.h does.
void AnsiHtml::utf8(unsigned char byte, const LineSink* sink) {
    if (utf8_size_ > 0) {
        if (byte >= utf8_low_ && byte <= utf8_high_) {
            utf8_.at(utf8_size_++) = static_cast<char>(byte);
            utf8_low_ = 0x80;
            utf8_high_ = 0xbf;
            if (utf8_size_ == utf8_needed_) {
                put(std::string_view(utf8_.data(), utf8_size_));
                utf8_size_ = 0;
            }
            return;
        }
        flush_utf8(); // cut short: one U+FFFD, then this byte on its own
        if (byte < 0x80) {
            ground(byte, sink);
            return;
        }
    }
    const auto lead = utf8_lead(byte);
    if (lead.length < 2) {
        put("\xef\xbf\xbd"); // never a lead byte
        return;
    }
    utf8_needed_ = static_cast<std::uint8_t>(lead.length);
    utf8_low_ = lead.low;
    utf8_high_ = lead.high;
    utf8_.at(0) = static_cast<char>(byte);
    utf8_size_ = 1;
}

void AnsiHtml::flush_utf8() {
    if (utf8_size_ > 0) {
        utf8_size_ = 0;
        put("\xef\xbf\xbd");
    }
}

void AnsiHtml::put(std::string_view bytes) {
    if (!render_) {
        skipped_text_ = true;
        return;
    }
    if (cursor_ >= max_columns) {
        ++cut_;
        return;
    }
    Cell cell;
    std::ranges::copy(bytes, cell.bytes.begin());
    cell.size = static_cast<std::uint8_t>(bytes.size());
    cell.style = style_;
    if (cursor_ < cells_.size()) {
        cells_[cursor_] = cell;
    } else {
        Cell space;
        space.bytes[0] = ' ';
        space.size = 1;
        cells_.resize(cursor_, space); // after a cursor move past the end
        cells_.push_back(cell);
    }
    ++cursor_;
}

void AnsiHtml::end_line(const LineSink* sink) {
    if (render_ && sink != nullptr) {
        (*sink)(line_, partial_html());
    }
    ++line_;
    cells_.clear();
    cursor_ = 0;
    cut_ = 0;
    skipped_text_ = false;
}

bool AnsiHtml::at_line_start() const {
    return cells_.empty() && cursor_ == 0 && cut_ == 0 && !skipped_text_ &&
           state_ == State::Ground && utf8_size_ == 0;
}

std::string AnsiHtml::partial_html() const {
    std::string out;
    out.reserve(cells_.size() + 32);
    const AnsiStyle plain;
    AnsiStyle open; // the style of the open span; plain: none is open
    for (const auto& cell : cells_) {
        if (!(cell.style == open)) {
            if (!(open == plain)) {
                out += "</span>";
            }
            if (!(cell.style == plain)) {
                out += fmt::format("<span class=\"{}\">", cell.style.classes());
            }
            open = cell.style;
        }
        append_html_escaped(out, std::string_view(cell.bytes.data(), cell.size));
    }
    if (!(open == plain)) {
        out += "</span>";
    }
    if (cut_ > 0) {
        out +=
            fmt::format("<span class=\"cut\"> \u2026 ({} more characters not shown)</span>", cut_);
    }
    return out;
}

std::size_t AnsiHtml::csi_number(std::size_t fallback) const {
    std::size_t value = 0;
    for (const char c : sequence_) {
        if (c < '0' || c > '9') {
            return fallback;
        }
        value = std::min<std::size_t>(value * 10 + static_cast<std::size_t>(c - '0'), max_columns);
    }
    return value == 0 ? fallback : value;
}

void AnsiHtml::csi_dispatch(unsigned char final_byte) {
    // Private sequences (ESC [ ? 25 l) and those with intermediates do nothing to the text.
    if (!sequence_.empty() && (sequence_[0] == '?' || sequence_[0] == '>' || sequence_[0] == '<' ||
                               sequence_[0] == '=')) {
        return;
    }
    if (std::ranges::any_of(sequence_, [](char c) { return c >= 0x20 && c <= 0x2f; })) {
        return;
    }
    switch (final_byte) {
    case 'm':
        apply_sgr(sequence_);
        return;
    case 'C':
        cursor_ = std::min(cursor_ + csi_number(1), max_columns);
        return;
    case 'D':
        cursor_ -= std::min(cursor_, csi_number(1));
        return;
    case 'G':
        cursor_ = std::min(csi_number(1) - 1, max_columns);
        return;
    case 'K': {
        if (sequence_ == "1") { // from the start to the cursor
            Cell space;
            space.bytes[0] = ' ';
            space.size = 1;
            for (std::size_t i = 0; i <= cursor_ && i < cells_.size(); ++i) {
                cells_[i] = space;
            }
        } else if (sequence_ == "2") { // the whole line
            cells_.clear();
        } else { // from the cursor to the end
            cells_.resize(std::min(cells_.size(), cursor_));
        }
        return;
    }
    default:
        return; // other lines, the screen, modes: not in a log
    }
}

void AnsiHtml::apply_sgr(std::string_view params) {
    SgrGroups groups; // not zeroed (4 KB per SGR): sgr_groups sets what it reads
    sgr_groups(params, groups);
    const auto colour = [&](std::size_t& i, std::int16_t& target) {
        // 38;5;N or 38;2;R;G;B, or the same as one group of ':' sub-parameters.
        const auto& group = groups[i];
        std::array<int, 5> args{};
        std::size_t n = 0;
        if (group.size() > 1) {
            for (std::size_t k = 1; k < group.size(); ++k) {
                // 38:2:<colour space>:R:G:B: the colour space is left out.
                if (group.size() != 6 || group[1] != 2 || k != 2) {
                    args.at(n++) = group[k];
                }
            }
        } else {
            for (std::size_t k = i + 1; k < groups.size() && k <= i + 4; ++k) {
                args.at(n++) = groups[k].front();
            }
        }
        if (n >= 2 && args[0] == 5) {
            if (args[1] <= 255) {
                target = static_cast<std::int16_t>(args[1]);
            }
            i += group.size() > 1 ? 0 : 2;
        } else if (n >= 4 && args[0] == 2) {
            if (args[1] <= 255 && args[2] <= 255 && args[3] <= 255) {
                target = nearest_index(args[1], args[2], args[3]);
            }
            i += group.size() > 1 ? 0 : 4;
        } else {
            i = groups.size(); // malformed: the rest means nothing
        }
    };
    for (std::size_t i = 0; i < groups.size(); ++i) {
        const int code = groups[i].front();
        if (code == 0) {
            style_ = AnsiStyle{};
        } else if (code == 1) {
            style_.bold = true;
        } else if (code == 2) {
            style_.faint = true;
        } else if (code == 3) {
            style_.italic = true;
        } else if (code == 4) {
            style_.underline = groups[i].size() < 2 || groups[i][1] != 0; // 4:0 is "none"
        } else if (code == 22) {
            style_.bold = false;
            style_.faint = false;
        } else if (code == 23) {
            style_.italic = false;
        } else if (code == 24) {
            style_.underline = false;
        } else if (code >= 30 && code <= 37) {
            style_.fg = static_cast<std::int16_t>(code - 30);
        } else if (code == 38) {
            colour(i, style_.fg);
        } else if (code == 39) {
            style_.fg = -1;
        } else if (code >= 40 && code <= 47) {
            style_.bg = static_cast<std::int16_t>(code - 40);
        } else if (code == 48) {
            colour(i, style_.bg);
        } else if (code == 49) {
            style_.bg = -1;
        } else if (code >= 90 && code <= 97) {
            style_.fg = static_cast<std::int16_t>(code - 90 + 8);
        } else if (code >= 100 && code <= 107) {
            style_.bg = static_cast<std::int16_t>(code - 100 + 8);
        }
    }
}

std::vector<std::pair<std::int64_t, std::string>> ansi_lines(std::string_view log) {
    std::vector<std::pair<std::int64_t, std::string>> out;
    AnsiHtml renderer;
    const AnsiHtml::LineSink sink = [&out](std::int64_t number, std::string_view html) {
        out.emplace_back(number, std::string(html));
    };
    renderer.feed(log, sink);
    renderer.finish(sink);
    return out;
}

} // namespace ci::web
