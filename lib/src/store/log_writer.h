#pragma once

// Build logs written off the caller's thread: chunks are queued in memory and a writer thread
// appends them to the state database in group commits, on a connection of its own. Private to
// libci (the master uses it); embedders read logs through Store::log().

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <ci/core/error.h>

namespace ci::store {

/// How a LogWriter queues and writes.
struct LogWriterOptions {
    /// Text queued and not yet on disk (in raw bytes, including chunks kept after a failed write)
    /// above which wait_for_room() waits: memory stays bounded when the disk is slower than the
    /// builds, or fails.
    std::size_t memory_limit = std::size_t{16} << 20;
    /// At most this much text per transaction, so that the database's write lock (which webhook
    /// commits also need) is held briefly: with 4 MiB, webhooks sent during a 39 MB log waited
    /// 200-240 ms at p99 (bench/master/log_bench.py); with 128 KiB, 50-60 ms, at the same MB/s.
    std::size_t round_bytes = std::size_t{128} << 10;
    /// How long a commit waits for another connection's write lock before it fails (and is
    /// retried).
    std::chrono::milliseconds busy_timeout{5000};
    /// Backoff after a failed write: the first retry comes after first_retry, each later one
    /// after twice the previous wait, at most max_retry.
    std::chrono::milliseconds first_retry{100};
    std::chrono::milliseconds max_retry{5000};
    /// While writes fail, one log line per interval (with how many attempts failed).
    std::chrono::milliseconds report_interval{10000};
    /// When stopping, how long the writer keeps retrying what is still queued before it gives
    /// up on it (saying how many chunks were lost).
    std::chrono::milliseconds stop_timeout{5000};
    /// Called on the writer thread after each failed write (for a count, a degraded health).
    std::function<void(const Error&)> on_failure;
    /// Called on the writer thread after the first successful write that follows failures.
    std::function<void()> on_recovered;
    /// Called on the writer thread for each chunk once it is on disk, in the order of append()
    /// (for a copy in memory that may now let the chunk go); before flush() returns for it.
    std::function<void(std::int64_t build, int step, std::int64_t sequence)> on_written;
};

/// Appends log chunks to the log_chunks table of a state database that open_sqlite created, as
/// Store::append_log stores them (same rows, same compression, idempotent on (build, step,
/// sequence)), so that Store::log() reads them.
///
/// Durability: commits run at synchronous=NORMAL on the writer's own connection, so a log chunk
/// is not synced to disk by its own commit. A crash of the machine may lose the last moments of a
/// log; the next synchronous commit of the store (any build state, any webhook) makes everything
/// before it durable, since WAL commits are ordered. A build's state is never written here.
///
/// Failures: a failed write is reported through on_failure, logged (one line per
/// report_interval with a count), kept in memory and retried with a growing backoff, together
/// with what was queued since. Nothing is dropped while the writer runs.
///
/// Thread-safe: any thread may append, wait and flush.
class LogWriter {
public:
    /// Opens a connection to the state database at `path` (which must exist, with its schema)
    /// and starts the writer thread. Fails with ErrorCode::Store naming the file.
    [[nodiscard]] static Result<std::unique_ptr<LogWriter>> open(const std::filesystem::path& path,
                                                                 LogWriterOptions options = {});

    /// Writes what is still queued (retrying up to stop_timeout), then stops the thread and
    /// closes the connection. Anything still unwritten is logged as lost.
    ~LogWriter();
    LogWriter(const LogWriter&) = delete;
    LogWriter& operator=(const LogWriter&) = delete;

    /// Waits while more than memory_limit bytes are queued (the disk is behind or failing). Call
    /// it before append(), outside any lock other threads wait on: append itself never waits.
    /// While writes fail with the queue full, it waits until they succeed again: that is the
    /// back-pressure a caller gets (the master's worker connections stop being read). Returns
    /// at once when the writer is stopping.
    void wait_for_room();

    /// Queues chunk `sequence` of a step's log. Never waits (see wait_for_room) and never touches
    /// the disk; the chunk is on disk after a later flush() of its build returns success.
    void append(std::int64_t build, int step, std::int64_t sequence, std::string text);

    /// Waits until every chunk of `build` appended before this call is on disk. Fails with
    /// ErrorCode::Store (the write's error) at once while writes fail, or as soon as a write
    /// attempt fails meanwhile (the chunks stay queued and are retried: waiting for a failing
    /// disk would only stall the caller), and with ErrorCode::Timeout after `timeout`.
    [[nodiscard]] Status flush(std::int64_t build, std::chrono::milliseconds timeout);

    /// How many chunks of `build` are queued and not yet on disk.
    [[nodiscard]] std::size_t queued(std::int64_t build) const;

    /// Counters since the writer started.
    struct Stats {
        std::uint64_t chunks_written = 0; ///< rows inserted (or ignored as already there)
        std::uint64_t commits = 0;        ///< successful transactions (rounds)
        std::uint64_t failures = 0;       ///< failed write attempts
        std::size_t queued_bytes = 0;     ///< text not yet on disk
    };
    [[nodiscard]] Stats stats() const;

    class Impl;

private:
    explicit LogWriter(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ci::store
