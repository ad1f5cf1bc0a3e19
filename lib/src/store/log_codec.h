#pragma once

// How a log chunk is stored in the log_chunks table, shared by the store's own append_log and
// read path (sqlite_store.cpp) and the log writer (log_writer.cpp): one format, one place.

#include <optional>
#include <string>
#include <string_view>

namespace ci::store::detail {

/// Inserts one stored chunk: (build_id, step, sequence, compressed). OR IGNORE: a chunk sent
/// again (a worker that reconnected) is stored once.
inline constexpr const char* insert_log_chunk_sql =
    "INSERT OR IGNORE INTO log_chunks VALUES (?1, ?2, ?3, ?4)";

/// The stored form of `text`: its size (4 bytes, host order), then the text compressed at the
/// fastest level in the zlib format (by libdeflate when libci was built with it, else by zlib).
[[nodiscard]] std::string compress_log_text(std::string_view text);

/// The text back; nullopt when `stored` is not a chunk compress_log_text wrote (corrupt).
[[nodiscard]] std::optional<std::string> decompress_log_text(std::string_view stored);

} // namespace ci::store::detail
