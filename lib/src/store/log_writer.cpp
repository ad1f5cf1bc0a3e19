#include "store/log_writer.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <malloc.h>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <sqlite3.h>

#include <ci/core/log.h>

#include "store/log_codec.h"

namespace ci::store {

namespace {

using Clock = std::chrono::steady_clock;

// A chunk as appended, waiting for the writer.
struct Queued {
    std::int64_t build = 0;
    int step = 0;
    std::int64_t sequence = 0;
    std::string text;
    std::uint64_t ticket = 0; // appends are numbered in order: commits cover a prefix
};

// A chunk compressed for its row; kept until a commit holds it.
struct Row {
    std::int64_t build = 0;
    int step = 0;
    std::int64_t sequence = 0;
    std::string compressed;
    std::size_t text_bytes = 0;
    std::uint64_t ticket = 0;
};

} // namespace

class LogWriter::Impl {
public:
    Impl(sqlite3* db, std::string path, LogWriterOptions options)
        : db_(db), path_(std::move(path)), options_(std::move(options)) {}

    ~Impl() {
        sqlite3_finalize(insert_);
        sqlite3_close_v2(db_);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    Status prepare() {
        sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));
        // NORMAL: a commit is not synced by itself (see the header); the store's own
        // connection stays FULL for build state.
        if (sqlite3_exec(db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr) !=
                SQLITE_OK ||
            sqlite3_prepare_v3(db_,
                               detail::insert_log_chunk_sql,
                               -1,
                               SQLITE_PREPARE_PERSISTENT,
                               &insert_,
                               nullptr) != SQLITE_OK) {
            return fail(ErrorCode::Store,
                        fmt::format("{}: open for build logs: {}", path_, sqlite3_errmsg(db_)),
                        sqlite3_errcode(db_));
        }
        return {};
    }

    void start() {
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        {
            const std::lock_guard lock(mutex_);
            stopping_ = true;
            stop_deadline_ = Clock::now() + options_.stop_timeout;
        }
        work_.notify_all();
        progress_.notify_all();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

    void wait_for_room() {
        std::unique_lock lock(mutex_);
        progress_.wait(lock, [&] { return stopping_ || queued_bytes_ <= options_.memory_limit; });
    }

    void append(std::int64_t build, int step, std::int64_t sequence, std::string text) {
        {
            const std::lock_guard lock(mutex_);
            const auto ticket = next_ticket_++;
            auto& pending = builds_[build];
            pending.last_ticket = ticket;
            ++pending.chunks;
            queued_bytes_ += text.size();
            queue_.push_back(Queued{build, step, sequence, std::move(text), ticket});
        }
        work_.notify_one();
    }

    Status flush(std::int64_t build, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        const auto found = builds_.find(build);
        if (found == builds_.end()) {
            return {};
        }
        const auto ticket = found->second.last_ticket;
        const auto failures = stats_.failures;
        if (!failing_) {
            progress_.wait_for(lock, timeout, [&] {
                return committed_ticket_ >= ticket || stats_.failures != failures;
            });
        }
        if (committed_ticket_ >= ticket) {
            return {};
        }
        if (failing_ && last_error_) {
            return fail(ErrorCode::Store,
                        fmt::format("the log of build {} is not on disk yet (kept in memory, "
                                    "retried): {}",
                                    build,
                                    last_error_->message),
                        last_error_->native);
        }
        return fail(
            ErrorCode::Timeout,
            fmt::format("the log of build {} is not on disk after {} ms", build, timeout.count()));
    }

    std::size_t queued(std::int64_t build) const {
        const std::lock_guard lock(mutex_);
        const auto found = builds_.find(build);
        return found == builds_.end() ? 0 : found->second.chunks;
    }

    Stats stats() const {
        const std::lock_guard lock(mutex_);
        auto stats = stats_;
        stats.queued_bytes = queued_bytes_;
        return stats;
    }

private:
    // The writer thread: one transaction per round of whatever is queued (up to round_bytes),
    // compressed outside the lock; after a failure, the same rows again (with what was queued
    // since) after a growing backoff.
    void run() {
        std::chrono::milliseconds backoff{0};
        Clock::time_point retry_at{};
        std::vector<Row> held; // compressed, not yet committed: a failed round's rows
        std::size_t held_bytes = 0;
        constexpr std::size_t trim_after = std::size_t{4} << 20;
        std::size_t written_since_trim = 0;
        for (;;) {
            std::vector<Queued> taken;
            {
                std::unique_lock lock(mutex_);
                if (held.empty()) {
                    if (queue_.empty() && written_since_trim >= trim_after) {
                        // A burst is written: give its memory back (the queue's chunks were
                        // freed on this thread and others; glibc keeps freed pages otherwise).
                        lock.unlock();
#ifdef __GLIBC__
                        ::malloc_trim(0);
#endif
                        lock.lock();
                        written_since_trim = 0;
                    }
                    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
                    if (queue_.empty()) {
                        return; // stopping, and everything is on disk
                    }
                } else {
                    // No hot loop: wait out the backoff, stopping or not.
                    const auto until = stopping_ ? std::min(retry_at, stop_deadline_) : retry_at;
                    work_.wait_until(lock, until, [&] {
                        return Clock::now() >=
                               (stopping_ ? std::min(retry_at, stop_deadline_) : retry_at);
                    });
                    if (stopping_ && Clock::now() >= stop_deadline_) {
                        give_up(held.size() + queue_.size());
                        return;
                    }
                }
                std::size_t bytes = held_bytes;
                while (!queue_.empty() && bytes < options_.round_bytes) {
                    bytes += queue_.front().text.size();
                    taken.push_back(std::move(queue_.front()));
                    queue_.pop_front();
                }
            }
            for (auto& chunk : taken) {
                held.push_back(Row{chunk.build,
                                   chunk.step,
                                   chunk.sequence,
                                   detail::compress_log_text(chunk.text),
                                   chunk.text.size(),
                                   chunk.ticket});
                held_bytes += chunk.text.size();
            }
            taken.clear();
            if (auto written = write(held); written) {
                written_since_trim += held_bytes;
                committed(held);
                held.clear();
                held_bytes = 0;
                backoff = std::chrono::milliseconds(0);
            } else {
                backoff = backoff.count() == 0 ? options_.first_retry
                                               : std::min(backoff * 2, options_.max_retry);
                retry_at = Clock::now() + backoff;
                failed(written.error(), held.size(), held_bytes);
            }
        }
    }

    Status write(const std::vector<Row>& rows) {
        // The error first (a reset or a rollback may replace SQLite's message), then the rollback.
        const auto failed = [&](const char* what) -> Status {
            auto failure = fail(
                ErrorCode::Store,
                fmt::format(
                    "{}: {} {} log chunk(s): {}", path_, what, rows.size(), sqlite3_errmsg(db_)),
                sqlite3_errcode(db_));
            sqlite3_reset(insert_);
            sqlite3_clear_bindings(insert_);
            (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            return failure;
        };
        if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
            return failed("begin writing");
        }
        for (const auto& row : rows) {
            sqlite3_bind_int64(insert_, 1, row.build);
            sqlite3_bind_int64(insert_, 2, row.step);
            sqlite3_bind_int64(insert_, 3, row.sequence);
            // STATIC: the rows outlive the statement's use of them (reset below).
            sqlite3_bind_blob(insert_,
                              4,
                              row.compressed.data(),
                              static_cast<int>(row.compressed.size()),
                              SQLITE_STATIC);
            if (sqlite3_step(insert_) != SQLITE_DONE) {
                return failed("write");
            }
            sqlite3_reset(insert_);
        }
        sqlite3_clear_bindings(insert_);
        if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
            return failed("commit");
        }
        return {};
    }

    void committed(const std::vector<Row>& rows) {
        // Before flush() can return for them: a caller that flushed sees them reported.
        if (options_.on_written) {
            for (const auto& row : rows) {
                options_.on_written(row.build, row.step, row.sequence);
            }
        }
        bool recovered = false;
        std::uint64_t failures = 0;
        {
            const std::lock_guard lock(mutex_);
            committed_ticket_ = rows.back().ticket;
            for (const auto& row : rows) {
                queued_bytes_ -= row.text_bytes;
                if (auto found = builds_.find(row.build);
                    found != builds_.end() && --found->second.chunks == 0) {
                    builds_.erase(found);
                }
            }
            stats_.chunks_written += rows.size();
            ++stats_.commits;
            recovered = failing_;
            failing_ = false;
            failures = failures_in_a_row_;
            failures_in_a_row_ = 0;
        }
        if (recovered) {
            log::info("build logs: {}: written again after {} failed attempt(s); nothing was lost",
                      path_,
                      failures);
            if (options_.on_recovered) {
                options_.on_recovered();
            }
        }
        // After the recovery is reported: a flush() that returns has seen it (the master's
        // health and the tests rely on that order).
        progress_.notify_all();
    }

    void failed(const Error& error, std::size_t chunks, std::size_t bytes) {
        bool first = false;
        bool report = false;
        std::uint64_t since_report = 0;
        std::chrono::milliseconds interval{};
        {
            const std::lock_guard lock(mutex_);
            ++stats_.failures;
            ++failures_in_a_row_;
            last_error_ = error;
            const auto now = Clock::now();
            first = !failing_;
            if (first) {
                failures_since_report_ = 0;
                last_report_ = now;
            } else {
                ++failures_since_report_;
                if (now - last_report_ >= options_.report_interval) {
                    report = true;
                    since_report = failures_since_report_;
                    interval =
                        std::chrono::duration_cast<std::chrono::milliseconds>(now - last_report_);
                    failures_since_report_ = 0;
                    last_report_ = now;
                }
            }
            failing_ = true;
        }
        progress_.notify_all();
        if (first) {
            log::error("build logs: {}; {} chunk(s) ({} bytes) kept in memory, retried with "
                       "backoff",
                       error.message,
                       chunks,
                       bytes);
        } else if (report) {
            log::error("build logs: {} more failed attempt(s) in the last {:.0f} s; {} chunk(s) "
                       "({} bytes) kept in memory: {}",
                       since_report,
                       std::chrono::duration<double>(interval).count(),
                       chunks,
                       bytes,
                       error.message);
        }
        if (options_.on_failure) {
            options_.on_failure(error);
        }
    }

    // Stopping while writes still fail: what is left is lost, and said so.
    void give_up(std::size_t chunks) {
        log::error("build logs: {}: stopping with {} log chunk(s) ({} bytes) not written: {}",
                   path_,
                   chunks,
                   queued_bytes_,
                   last_error_ ? last_error_->message : "the writes kept failing");
    }

    sqlite3* db_;
    std::string path_;
    LogWriterOptions options_;
    sqlite3_stmt* insert_ = nullptr; // used by the writer thread only

    mutable std::mutex mutex_;
    std::condition_variable work_;     // the writer waits: something queued, or stopping
    std::condition_variable progress_; // others wait: a commit, a failure, or stopping
    std::deque<Queued> queue_;
    std::size_t queued_bytes_ = 0; // text appended and not yet committed (queued or held)
    std::uint64_t next_ticket_ = 1;
    std::uint64_t committed_ticket_ = 0; // every append up to this ticket is on disk
    struct Pending {
        std::uint64_t last_ticket = 0;
        std::size_t chunks = 0;
    };
    std::unordered_map<std::int64_t, Pending> builds_; // builds with chunks not yet on disk
    Stats stats_;
    std::optional<Error> last_error_;
    bool failing_ = false;
    std::uint64_t failures_in_a_row_ = 0;
    std::uint64_t failures_since_report_ = 0;
    Clock::time_point last_report_{};
    bool stopping_ = false;
    Clock::time_point stop_deadline_{};
    std::thread thread_; // last: starts after everything it uses
};

Result<std::unique_ptr<LogWriter>> LogWriter::open(const std::filesystem::path& path,
                                                   LogWriterOptions options) {
    sqlite3* db = nullptr;
    // No CREATE: the store made the database and its schema.
    const int code =
        sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
    if (code != SQLITE_OK) {
        std::string message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(code);
        sqlite3_close_v2(db);
        return fail(ErrorCode::Store,
                    fmt::format("{}: open for build logs: {}", path.string(), message),
                    code);
    }
    auto impl = std::make_unique<Impl>(db, path.string(), std::move(options));
    if (auto status = impl->prepare(); !status) {
        return fail(status.error());
    }
    impl->start();
    return std::unique_ptr<LogWriter>(new LogWriter(std::move(impl)));
}

LogWriter::LogWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LogWriter::~LogWriter() {
    impl_->stop();
}

void LogWriter::wait_for_room() {
    impl_->wait_for_room();
}

void LogWriter::append(std::int64_t build, int step, std::int64_t sequence, std::string text) {
    impl_->append(build, step, sequence, std::move(text));
}

Status LogWriter::flush(std::int64_t build, std::chrono::milliseconds timeout) {
    return impl_->flush(build, timeout);
}

std::size_t LogWriter::queued(std::int64_t build) const {
    return impl_->queued(build);
}

LogWriter::Stats LogWriter::stats() const {
    return impl_->stats();
}

} // namespace ci::store
