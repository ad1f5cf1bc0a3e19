// The log writer against a real SQLite state database: group commits that Store::log() reads,
// idempotence on (build, step, sequence), the per-build barrier, the memory limit, failed writes
// (a database another connection keeps locked; a full tmpfs mounted for the test) kept in memory,
// retried with backoff and written once the disk works again.

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>
#include <zlib.h>

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <ci/core/log.h>
#include <ci/store/store.h>

#include "store/log_codec.h"
#include "store/log_writer.h"
#include "support/require_ok.h"
#include "support/skip.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using ci::store::LogWriter;
using ci::store::LogWriterOptions;

std::unique_ptr<ci::store::Store> open_store(const std::filesystem::path& path) {
    auto store = ci::store::open_sqlite(path);
    REQUIRE_OK(store);
    return std::move(*store);
}

std::unique_ptr<LogWriter> open_writer(const std::filesystem::path& path,
                                       LogWriterOptions options = {}) {
    auto writer = LogWriter::open(path, std::move(options));
    REQUIRE_OK(writer);
    return std::move(*writer);
}

// Another connection that holds the database's write lock while it lives (until release()).
class WriteLock {
public:
    explicit WriteLock(const std::filesystem::path& path) {
        REQUIRE(sqlite3_open(path.c_str(), &db_) == SQLITE_OK);
        REQUIRE(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
    }
    ~WriteLock() {
        release();
        sqlite3_close(db_);
    }
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;

    void release() {
        if (held_) {
            (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            held_ = false;
        }
    }

private:
    sqlite3* db_ = nullptr;
    bool held_ = true;
};

// Polls `condition` until it holds or 30 s pass; returns whether it held.
template <class F> bool eventually(F condition) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// A state database the store made, in a temporary directory.
struct Database {
    ci::test::TempDir dir;
    std::filesystem::path path = dir / "state.sqlite";
    std::unique_ptr<ci::store::Store> store = open_store(path);
};

// Options of a writer that waits for another connection's lock instead of failing.
LogWriterOptions patient() {
    LogWriterOptions options;
    options.busy_timeout = 60s;
    return options;
}

std::string line_text(int i) {
    return "line " + std::to_string(i) + " of a build log\n";
}

} // namespace

TEST_CASE("log writer: what was queued while a round ran is written in one commit, as "
          "Store::log reads it") {
    Database db;
    std::mutex mutex;
    std::vector<std::tuple<std::int64_t, int, std::int64_t>> written;
    auto options = patient();
    options.on_written = [&](std::int64_t build, int step, std::int64_t sequence) {
        const std::lock_guard guard(mutex);
        written.emplace_back(build, step, sequence);
    };
    auto writer = open_writer(db.path, options);

    std::string build1_step1;
    std::string build2_step0;
    {
        // The writer's first round (whatever it took) waits for this lock; everything appended
        // meanwhile is one round after it.
        WriteLock lock(db.path);
        for (int i = 0; i < 200; ++i) {
            writer->append(1, 1, i, line_text(i));
            build1_step1 += line_text(i);
            writer->append(2, 0, i, "checkout " + std::to_string(i) + "\n");
            build2_step0 += "checkout " + std::to_string(i) + "\n";
        }
        CHECK(writer->stats().chunks_written == 0);
        CHECK(writer->queued(1) == 200);
    }
    REQUIRE_OK(writer->flush(1, 60s));
    REQUIRE_OK(writer->flush(2, 60s));
    const auto stats = writer->stats();
    CHECK(stats.chunks_written == 400);
    CHECK(stats.commits <= 2);
    CHECK(stats.failures == 0);
    CHECK(stats.queued_bytes == 0);
    CHECK(writer->queued(1) == 0);
    {
        // Each chunk reported once on disk, in the order it was appended.
        const std::lock_guard guard(mutex);
        REQUIRE(written.size() == 400);
        for (int i = 0; i < 200; ++i) {
            const auto at = static_cast<std::size_t>(i) * 2;
            CHECK(written[at] == std::tuple<std::int64_t, int, std::int64_t>{1, 1, i});
            CHECK(written[at + 1] == std::tuple<std::int64_t, int, std::int64_t>{2, 0, i});
        }
    }

    auto log = db.store->log(1, 1);
    REQUIRE_OK(log);
    CHECK(*log == build1_step1);
    log = db.store->log(2, 0);
    REQUIRE_OK(log);
    CHECK(*log == build2_step0);
    log = db.store->log(1, 1, 150); // from a sequence on: the numbering is the appender's
    REQUIRE_OK(log);
    CHECK(*log == build1_step1.substr(build1_step1.find(line_text(150))));
}

TEST_CASE("log writer: a chunk appended twice, or also stored by Store::append_log, is stored "
          "once") {
    Database db;
    REQUIRE_OK(db.store->append_log(7, 2, 0, "first\n"));
    {
        auto writer = open_writer(db.path);
        writer->append(7, 2, 0, "first\n"); // already stored by the store itself
        writer->append(7, 2, 1, "second\n");
        writer->append(7, 2, 1, "second\n"); // a worker that reconnected sends it again
        REQUIRE_OK(writer->flush(7, 60s));
        CHECK(writer->stats().chunks_written == 3);
    }
    // A new writer (a restarted master) receiving the same chunks again.
    auto writer = open_writer(db.path);
    writer->append(7, 2, 1, "second\n");
    writer->append(7, 2, 2, "third\n");
    REQUIRE_OK(writer->flush(7, 60s));
    auto log = db.store->log(7, 2);
    REQUIRE_OK(log);
    CHECK(*log == "first\nsecond\nthird\n");
}

TEST_CASE("log writer: flush is a barrier for one build's chunks, and the destructor writes what "
          "is queued") {
    Database db;
    auto writer = open_writer(db.path, patient());

    CHECK_OK(writer->flush(99, 0ms)); // nothing queued for it: nothing to wait for
    {
        WriteLock lock(db.path);
        writer->append(1, 1, 0, "held back\n");
        const auto waited = writer->flush(1, 50ms);
        REQUIRE_FALSE(waited.has_value());
        CHECK(waited.error().code == ci::ErrorCode::Timeout);
        CHECK(waited.error().message.find("build 1") != std::string::npos);
        CHECK_OK(writer->flush(2, 0ms)); // another build's chunks are not its business
    }
    REQUIRE_OK(writer->flush(1, 60s));
    auto log = db.store->log(1, 1);
    REQUIRE_OK(log);
    CHECK(*log == "held back\n"); // on disk when flush returned

    for (int i = 0; i < 50; ++i) {
        writer->append(3, 1, i, line_text(i));
    }
    writer.reset(); // no flush: stopping writes what is queued
    log = db.store->log(3, 1);
    REQUIRE_OK(log);
    CHECK(log->size() == [] {
        std::size_t size = 0;
        for (int i = 0; i < 50; ++i) {
            size += line_text(i).size();
        }
        return size;
    }());
}

TEST_CASE("log writer: wait_for_room waits while more than the memory limit is queued") {
    Database db;
    auto options = patient();
    options.memory_limit = 1000;
    auto writer = open_writer(db.path, options);
    auto lock = std::make_unique<WriteLock>(db.path);
    writer->append(1, 1, 0, std::string(600, 'a'));
    writer->wait_for_room(); // 600 <= 1000: room
    writer->append(1, 1, 1, std::string(600, 'b'));
    std::atomic<bool> returned{false};
    std::thread waiter([&] {
        writer->wait_for_room(); // 1200 > 1000: waits for the disk
        returned = true;
    });
    // It must still be waiting a while later: nothing could be written.
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(returned.load());
    lock.reset();
    CHECK(eventually([&] { return returned.load(); }));
    waiter.join();
    REQUIRE_OK(writer->flush(1, 60s));
    CHECK(writer->stats().queued_bytes == 0);
}

TEST_CASE("log writer: failed writes are reported, kept and retried with a growing backoff; "
          "nothing is lost") {
    Database db;
    std::mutex mutex;
    std::vector<std::chrono::steady_clock::time_point> failed_at;
    std::vector<std::string> errors;
    std::atomic<int> recovered{0};
    std::vector<std::string> logged;
    const auto level = ci::log::level();
    ci::log::set_level(ci::log::Level::Info);
    ci::log::set_sink([&](ci::log::Level, std::string_view line) {
        const std::lock_guard guard(mutex);
        if (line.find("build logs") != std::string_view::npos) {
            logged.emplace_back(line);
        }
    });
    struct RestoreLog {
        ci::log::Level level;
        ~RestoreLog() {
            ci::log::set_sink({});
            ci::log::set_level(level);
        }
    } restore_log{level};
    LogWriterOptions options;
    options.busy_timeout = 1ms; // a locked database fails the write at once
    options.first_retry = 20ms;
    options.max_retry = 80ms;
    options.report_interval = 1h; // one line for the first failure, none after it
    options.on_failure = [&](const ci::Error& error) {
        const std::lock_guard guard(mutex);
        failed_at.push_back(std::chrono::steady_clock::now());
        errors.push_back(error.message);
    };
    options.on_recovered = [&] { ++recovered; };
    auto writer = open_writer(db.path, options);

    std::string expected;
    {
        WriteLock lock(db.path);
        for (int i = 0; i < 10; ++i) {
            writer->append(5, 1, i, line_text(i));
            expected += line_text(i);
        }
        REQUIRE(eventually([&] {
            const std::lock_guard guard(mutex);
            return failed_at.size() >= 5;
        }));
        // Appended while failing: retried with the rest.
        writer->append(5, 1, 10, line_text(10));
        expected += line_text(10);
        const auto flushed = writer->flush(5, 60s);
        REQUIRE_FALSE(flushed.has_value());
        CHECK(flushed.error().code == ci::ErrorCode::Store);
        CHECK(flushed.error().message.find("locked") != std::string::npos);
        CHECK(writer->queued(5) == 11);
        CHECK(recovered == 0);
    }
    REQUIRE_OK([&] {
        ci::Status status = ci::fail(ci::ErrorCode::Timeout, "never flushed");
        eventually([&] { return (status = writer->flush(5, 1s)).has_value(); });
        return status;
    }());
    CHECK(recovered == 1);
    auto log = db.store->log(5, 1);
    REQUIRE_OK(log);
    CHECK(*log == expected);

    const std::lock_guard guard(mutex);
    CHECK(writer->stats().failures == failed_at.size());
    // One line when the writes started failing (not one per attempt), one when they recovered.
    REQUIRE(logged.size() == 2);
    CHECK(logged[0].find("database is locked") != std::string::npos);
    CHECK(logged[0].find("kept in memory") != std::string::npos);
    CHECK(logged[1].find("written again after") != std::string::npos);
    CHECK(errors.front().find(db.path.string()) != std::string::npos);
    // No hot loop: each retry waited at least the backoff, doubling from 20 ms up to 80 ms.
    auto backoff = 20ms;
    for (std::size_t i = 1; i < failed_at.size(); ++i) {
        CHECK(failed_at[i] - failed_at[i - 1] >= backoff);
        backoff = std::min(backoff * 2, 80ms);
    }
}

TEST_CASE("log writer: a full disk (a 1 MiB tmpfs mounted for the test) fails the writes, and "
          "they succeed once there is room") {
    ci::test::TempDir dir;
    const auto mount_point = dir / "small";
    std::filesystem::create_directories(mount_point);
    if (::mount("tmpfs", mount_point.c_str(), "tmpfs", 0, "size=1m") != 0) {
        ci::test::skip("log writer full-disk test: cannot mount a tmpfs here (needs root or "
                       "CAP_SYS_ADMIN): " +
                       std::string(std::strerror(errno)));
        return;
    }
    struct Unmount {
        std::filesystem::path path;
        ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
    } unmount{mount_point};

    const auto path = mount_point / "state.sqlite";
    auto store = open_store(path);
    std::atomic<int> failures{0};
    std::atomic<int> recovered{0};
    std::mutex mutex;
    std::string first_error;
    LogWriterOptions options;
    options.first_retry = 10ms;
    options.max_retry = 50ms;
    options.on_failure = [&](const ci::Error& error) {
        const std::lock_guard guard(mutex);
        if (failures++ == 0) {
            first_error = error.message;
        }
    };
    options.on_recovered = [&] { ++recovered; };
    auto writer = open_writer(path, options);

    // Fill the filesystem.
    const auto filler = mount_point / "filler";
    {
        std::ofstream out(filler, std::ios::binary);
        const std::string block(4096, 'x');
        while (out.write(block.data(), static_cast<std::streamsize>(block.size())) && out.flush()) {
        }
    }
    // Text zlib cannot shrink much, so that the chunks need pages the disk does not have.
    std::string expected;
    std::uint64_t state = 12345;
    for (int i = 0; i < 20; ++i) {
        std::string text;
        for (int j = 0; j < 8192; ++j) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            text.push_back(static_cast<char>('!' + (state >> 58)));
        }
        text.push_back('\n');
        expected += text;
        writer->append(9, 1, i, std::move(text));
    }
    REQUIRE(eventually([&] { return failures.load() > 0; }));
    const auto flushed = writer->flush(9, 60s);
    REQUIRE_FALSE(flushed.has_value());
    CHECK(flushed.error().code == ci::ErrorCode::Store);
    {
        const std::lock_guard guard(mutex);
        CHECK(first_error.find("full") != std::string::npos);
    }
    CHECK(writer->queued(9) == 20);

    std::filesystem::remove(filler);
    REQUIRE(eventually([&] { return recovered.load() == 1; }));
    REQUIRE_OK(writer->flush(9, 60s));
    auto log = store->log(9, 1);
    REQUIRE_OK(log);
    CHECK(*log == expected);
}

TEST_CASE("log codec: chunks in the zlib format read back whoever compressed them") {
    std::string text;
    for (int i = 0; i < 5000; ++i) {
        text += line_text(i);
    }
    // What libci writes (libdeflate or zlib) is what zlib's uncompress() reads.
    const auto stored = ci::store::detail::compress_log_text(text);
    std::uint32_t original = 0;
    REQUIRE(stored.size() > sizeof original);
    std::memcpy(&original, stored.data(), sizeof original);
    CHECK(original == text.size());
    CHECK(stored.size() < text.size() / 4);
    std::string back(text.size(), '\0');
    uLongf size = back.size();
    REQUIRE(uncompress(reinterpret_cast<Bytef*>(back.data()),
                       &size,
                       reinterpret_cast<const Bytef*>(stored.data() + sizeof original),
                       stored.size() - sizeof original) == Z_OK);
    CHECK(back == text);

    // A chunk zlib compressed (as libci built without libdeflate, or an older one, wrote it).
    uLongf bound = compressBound(text.size());
    std::string zlib_stored(sizeof original + bound, '\0');
    std::memcpy(zlib_stored.data(), &original, sizeof original);
    REQUIRE(compress2(reinterpret_cast<Bytef*>(zlib_stored.data() + sizeof original),
                      &bound,
                      reinterpret_cast<const Bytef*>(text.data()),
                      text.size(),
                      1) == Z_OK);
    zlib_stored.resize(sizeof original + bound);
    CHECK(ci::store::detail::decompress_log_text(zlib_stored) == text);
    CHECK(ci::store::detail::decompress_log_text(stored) == text);
    CHECK_FALSE(ci::store::detail::decompress_log_text(stored.substr(0, stored.size() / 2)));
    CHECK_FALSE(ci::store::detail::decompress_log_text("ab"));
}
