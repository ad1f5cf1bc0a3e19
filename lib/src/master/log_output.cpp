#include "master/log_output.h"

#include <algorithm>
#include <vector>

#include <fmt/format.h>

#include "master/running.h"

namespace ci::master {

LogOutput::LogOutput(std::shared_ptr<http::ResponseStream> stream, LogFormat format, LogCursor from)
    : stream_(std::move(stream)), format_(format), from_(from.sequence), skip_(from.offset),
      renderer_(from.line, from.style), cursor_(from) {}

std::string LogOutput::content_type(LogFormat format) {
    return format == LogFormat::Text ? "text/plain; charset=utf-8" : "text/event-stream";
}

bool LogOutput::write(std::int64_t first, std::int64_t next, std::string_view text) {
    const std::lock_guard lock(mutex_);
    if (ended_ || stream_->closed()) {
        return false;
    }
    if (first < from_) {
        return true; // before where this client is: it has it (a follower of a future cursor)
    }
    std::size_t skipped = 0; // bytes of the cursor's offset that fall in this text
    if (skip_ > 0) {
        skipped = std::min<std::size_t>(static_cast<std::size_t>(skip_), text.size());
        text.remove_prefix(skipped);
        skip_ -= static_cast<std::int64_t>(skipped);
    }
    switch (format_) {
    case LogFormat::Text:
        return text.empty() || stream_->write(std::string(text));
    case LogFormat::TextEvents:
        return text.empty() || stream_->write(sse_event("log", text, std::to_string(next)));
    case LogFormat::HtmlEvents:
        return write_html_locked(first, next, skipped, text);
    }
    return false;
}

bool LogOutput::write_html_locked(std::int64_t first,
                                  std::int64_t next,
                                  std::size_t skipped,
                                  std::string_view text) {
    // Lines finished by this text go out as one event, whose id is the line start after them;
    // the line in progress goes as a `partial` event when it changed.
    std::string lines;
    std::int64_t first_line = 0;
    const web::AnsiHtml::LineSink sink = [&](std::int64_t number, std::string_view html) {
        if (lines.empty() && first_line == 0) {
            first_line = number;
        }
        lines += '\n';
        lines += html;
    };
    // The part up to the last newline is fed first: right after it is a line start, where a
    // cursor can be taken.
    const auto newline = text.rfind('\n');
    if (newline != std::string_view::npos) {
        renderer_.feed(text.substr(0, newline + 1), sink);
        // `text` is chunks [first, next) but for the `skipped` bytes at its start.
        const bool whole = newline + 1 == text.size();
        cursor_.sequence = whole ? next : first;
        cursor_.offset = whole ? 0 : static_cast<std::int64_t>(skipped + newline + 1);
        cursor_.line = renderer_.line();
        cursor_.style = renderer_.style();
        text.remove_prefix(newline + 1);
    }
    renderer_.feed(text, sink);
    bool ok = true;
    if (first_line != 0) {
        ok = stream_->write(
            sse_event("lines", fmt::format("{}{}", first_line, lines), cursor_.text()));
    }
    auto partial = renderer_.partial_html();
    if (ok && partial != partial_) {
        ok = stream_->write(sse_event("partial", partial));
        partial_ = std::move(partial);
    }
    return ok;
}

void LogOutput::note(std::string_view text) {
    const std::lock_guard lock(mutex_);
    if (ended_) {
        return;
    }
    (void)stream_->write(format_ == LogFormat::Text ? fmt::format("\n({})\n", text)
                                                    : sse_event("note", text));
}

void LogOutput::end(std::string_view result) {
    const std::lock_guard lock(mutex_);
    if (ended_) {
        return;
    }
    ended_ = true;
    if (format_ == LogFormat::HtmlEvents) {
        std::string lines;
        std::int64_t first_line = 0;
        renderer_.finish([&](std::int64_t number, std::string_view html) {
            first_line = number;
            lines = fmt::format("{}\n{}", number, html);
        });
        if (first_line != 0) {
            (void)stream_->write(sse_event("lines", lines));
        }
    }
    if (format_ != LogFormat::Text) {
        (void)stream_->write(sse_event("end", result.empty() ? "unknown" : result));
    }
    stream_->finish();
}

void LogOutput::cut(std::string_view why) {
    const std::lock_guard lock(mutex_);
    if (ended_) {
        return;
    }
    ended_ = true;
    (void)stream_->write(format_ == LogFormat::Text ? fmt::format("\n({})\n", why)
                                                    : sse_event("note", why));
    stream_->finish();
}

bool LogOutput::behind(std::size_t bytes) {
    // when_drained keeps the (empty) callback only while the client is behind.
    return stream_->when_drained(bytes, [] {});
}

} // namespace ci::master
