#pragma once

// How a step's log goes to one client: plain text (curl), Server-Sent Events of text, or
// Server-Sent Events of HTML lines (the build page's live log, rendered by web/ansi.h). Both the
// reader of stored pages (LogSender, routes_builds.cpp) and the live follower (Follower,
// running.h) write through one LogOutput, so that the format, the event ids and the resume
// point live in one place.
//
// Event ids are cursors (LogCursor): where a client that reconnects with `Last-Event-ID` goes
// on, without a line twice. A text event's id is the number of the chunk after it ("42"); an
// HTML event's id is the line start after its last line, with what rendering needs there
// ("41.1200.3001.1;38;5;1": 1200 bytes into chunk 41, line 3001, bold red).

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <ci/http/server.h>

#include "web/ansi.h"
#include "web/log_view.h"

namespace ci::master {

/// How a log is sent.
enum class LogFormat : std::uint8_t {
    Text,       ///< text/plain
    TextEvents, ///< text/event-stream: `log` events of text, then `end`
    HtmlEvents, ///< text/event-stream: `lines` and `partial` events of HTML, then `end`
};

using web::LogCursor;

/// One client's log stream. Thread-safe; writes must come in log order (the sender of stored
/// pages, then the follower, never both at once).
class LogOutput {
public:
    /// Sends to `stream` in `format`, the log from `from` on.
    LogOutput(std::shared_ptr<http::ResponseStream> stream, LogFormat format, LogCursor from);

    /// Chunks [`first`, `next`) of the log, whose text is `text`. Chunks before the cursor the
    /// output started from are dropped, and its offset into its first chunk skipped. False once
    /// the client is gone.
    bool write(std::int64_t first, std::int64_t next, std::string_view text);
    /// A note about the log itself (it could not be read): a line of text, or a `note` event.
    void note(std::string_view text);
    /// The step ended with `result` ("" when unknown): the last line and the `end` event, then
    /// the stream ends.
    void end(std::string_view result);
    /// The stream ends now, without an end event, after `why` as a note: the client should
    /// reconnect (an EventSource does, with the last id it got).
    void cut(std::string_view why);
    /// True when more than `bytes` are queued for the client (it reads slower than the log
    /// grows).
    [[nodiscard]] bool behind(std::size_t bytes);
    [[nodiscard]] bool closed() const { return stream_->closed(); }
    /// The stream, for flow control (ResponseStream::when_drained).
    [[nodiscard]] http::ResponseStream& stream() { return *stream_; }

    /// The Content-Type of `format`.
    [[nodiscard]] static std::string content_type(LogFormat format);

private:
    bool write_html_locked(std::int64_t first,
                           std::int64_t next,
                           std::size_t skipped,
                           std::string_view text);

    std::shared_ptr<http::ResponseStream> stream_;
    LogFormat format_;
    std::mutex mutex_;
    std::int64_t from_;      // chunks before this one are dropped
    std::int64_t skip_;      // bytes still to skip at `from_`
    web::AnsiHtml renderer_; // HtmlEvents only
    LogCursor cursor_;       // HtmlEvents: the line start after the last line sent
    std::string partial_;    // HtmlEvents: the partial line last sent
    bool ended_ = false;
};

} // namespace ci::master
