#include "web/log_view.h"

#include <algorithm>
#include <charconv>

#include <fmt/format.h>

namespace ci::web {

namespace {

// A non-negative integer of at most 18 digits (no sign, no overflow).
std::optional<std::int64_t> number(std::string_view text) {
    std::int64_t value = 0;
    if (text.empty() || text.size() > 18 || text.front() == '+' || text.front() == '-') {
        return std::nullopt;
    }
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc{} || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

} // namespace

std::optional<LogCursor> LogCursor::parse(std::string_view text) {
    std::vector<std::string_view> fields;
    while (fields.size() < 4) {
        const auto dot = fields.size() < 3 ? text.find('.') : std::string_view::npos;
        fields.push_back(text.substr(0, dot));
        if (dot == std::string_view::npos) {
            break;
        }
        text.remove_prefix(dot + 1);
    }
    LogCursor cursor;
    const auto sequence = number(fields[0]);
    if (!sequence) {
        return std::nullopt;
    }
    cursor.sequence = *sequence;
    if (fields.size() == 1) {
        return cursor;
    }
    if (fields.size() != 4) {
        return std::nullopt;
    }
    const auto offset = number(fields[1]);
    const auto line = number(fields[2]);
    const auto style = AnsiStyle::from_sgr(fields[3]);
    if (!offset || !line || *line < 1 || !style) {
        return std::nullopt;
    }
    cursor.offset = *offset;
    cursor.line = *line;
    cursor.style = *style;
    return cursor;
}

std::string LogCursor::text() const {
    return fmt::format("{}.{}.{}.{}", sequence, offset, line, style.sgr());
}

LogView::LogView(std::size_t max_lines, std::size_t max_bytes, std::int64_t from)
    : max_lines_(std::max<std::size_t>(max_lines, 1)),
      max_bytes_(std::max<std::size_t>(max_bytes, 1)), from_(from) {}

void LogView::add(std::int64_t first, std::int64_t next, std::string_view text) {
    bytes_ += static_cast<std::int64_t>(text.size());
    Page page{first, next, {}, scan_, std::ranges::count(text, '\n')};
    scan_.skip(text);
    if (from_ > 0) {
        // Lines from `from_` on: pages before its line are not kept; once enough is kept, no
        // more pages are (the scan goes on, for the line count).
        const bool before = scan_.line() < from_;
        const bool enough = !kept_.empty() && (kept_bytes_ >= max_bytes_ ||
                                               kept_.front().state.line() + kept_newlines_ >
                                                   from_ + static_cast<std::int64_t>(max_lines_));
        if (before || enough) {
            return;
        }
    }
    page.text = std::string(text);
    kept_newlines_ += page.newlines;
    kept_bytes_ += text.size();
    kept_.push_back(std::move(page));
    if (from_ > 0) {
        return;
    }
    // The newest pages: an older one goes once the newer ones hold what is shown.
    while (kept_.size() > 1 &&
           (kept_newlines_ - kept_.front().newlines > static_cast<std::int64_t>(max_lines_) ||
            kept_bytes_ - kept_.front().text.size() >= max_bytes_)) {
        kept_newlines_ -= kept_.front().newlines;
        kept_bytes_ -= kept_.front().text.size();
        kept_.pop_front();
    }
}

LogLines LogView::finish(bool ended) const {
    LogLines out;
    out.bytes = bytes_;
    out.total = scan_.line() - 1 + (scan_.at_line_start() ? 0 : 1);
    if (kept_.empty()) {
        out.after = LogCursor{0, 0, 1, {}};
        return out;
    }
    std::string all;
    all.reserve(kept_bytes_);
    std::vector<std::size_t> starts;
    for (const auto& page : kept_) {
        starts.push_back(all.size());
        all += page.text;
    }
    const auto& front = kept_.front().state;
    const std::size_t end = all.size();
    // [begin, stop): the text shown.
    std::size_t begin = 0;
    std::size_t stop = end;
    if (from_ > 0 && front.line() <= from_) {
        std::int64_t line = front.line();
        while (line < from_ && begin < end) {
            const auto newline = all.find('\n', begin);
            begin = newline == std::string::npos ? end : newline + 1;
            ++line;
        }
        stop = begin;
        for (std::size_t shown = 0; shown < max_lines_ && stop < end; ++shown) {
            const auto newline = all.find('\n', stop);
            stop = newline == std::string::npos ? end : newline + 1;
        }
        if (stop - begin > max_bytes_) {
            const auto newline = all.rfind('\n', begin + max_bytes_);
            stop =
                newline != std::string::npos && newline >= begin ? newline + 1 : begin + max_bytes_;
        }
    } else {
        // The last max_lines_ lines: back from the end, a line in progress counting as one.
        begin = end;
        std::size_t shown = 0;
        const auto last_newline = all.rfind('\n');
        if (last_newline == std::string::npos || last_newline + 1 < end) {
            begin = last_newline == std::string::npos ? 0 : last_newline + 1;
            shown = 1;
        }
        while (shown < max_lines_ && begin > 0) {
            const auto newline = begin >= 2 ? all.rfind('\n', begin - 2) : std::string::npos;
            begin = newline == std::string::npos ? 0 : newline + 1;
            ++shown;
        }
        if (end - begin > max_bytes_) {
            const auto newline = all.find('\n', end - max_bytes_ - 1);
            begin =
                newline != std::string::npos && newline + 1 < end ? newline + 1 : end - max_bytes_;
        }
    }
    out.first_cut = begin == 0 ? !front.at_line_start() : all[begin - 1] != '\n';

    // Where position `at` of `all` is: its page's first chunk and the offset into it.
    const auto cursor_at = [&](std::size_t at, const AnsiHtml& state) {
        LogCursor cursor{kept_.back().next, 0, state.line(), state.style()};
        if (at < end) {
            const auto page = static_cast<std::size_t>(
                std::upper_bound(starts.begin(), starts.end(), at) - starts.begin() - 1);
            cursor.sequence = kept_[page].first;
            cursor.offset = static_cast<std::int64_t>(at - starts[page]);
        }
        return cursor;
    };
    AnsiHtml renderer = front;
    renderer.skip(std::string_view(all).substr(0, begin));
    const AnsiHtml::LineSink sink = [&out](std::int64_t number, std::string_view html) {
        out.lines.emplace_back(number, std::string(html));
    };
    const std::string_view shown = std::string_view(all).substr(begin, stop - begin);
    const auto newline = shown.rfind('\n');
    if (newline == std::string_view::npos) {
        if (renderer.at_line_start()) {
            out.after = cursor_at(begin, renderer);
        } // else no line start to follow from in what is shown
    } else {
        renderer.feed(shown.substr(0, newline + 1), sink);
        out.after = cursor_at(begin + newline + 1, renderer);
    }
    renderer.feed(shown.substr(newline == std::string_view::npos ? 0 : newline + 1), sink);
    if (stop == end) {
        if (ended) {
            renderer.finish(sink);
        } else {
            out.partial = renderer.partial_html();
        }
    }
    return out;
}

std::string log_lines_html(int step, const LogLines& lines) {
    std::string out;
    std::size_t size = 0;
    for (const auto& line : lines.lines) {
        size += line.second.size() + 64;
    }
    out.reserve(size + lines.partial.size() + 64);
    for (const auto& [number, html] : lines.lines) {
        out += fmt::format(
            R"(<span class="l" id="step-{0}-{1}"><a class="n" href="#step-{0}-{1}">{1}</a>)",
            step,
            number);
        out += html;
        out += "\n</span>";
    }
    out += "<span class=\"l partial\">";
    out += lines.partial;
    out += "</span>";
    return out;
}

} // namespace ci::web
