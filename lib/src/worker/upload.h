#pragma once

// An upload step on the worker's side: the files of a directory (or one file) sent to the
// master over the build's connection (protocol UploadBegin, UploadChunk, UploadEnd; the master
// answers UploadReady and UploadDone; see lib/src/master/uploads.h).
//
// What is sent: regular files and directories only, found without following symbolic links.
// A symbolic link (in the tree, or `from` itself), a device, a FIFO or a socket is skipped and
// the step's log says so; so is a name that build::check_relative_path refuses (control
// characters, invalid UTF-8). Each file's SHA-256 is computed before anything is sent, and the
// master checks it once the file has arrived. Chunks are protocol::upload_chunk bytes: the
// connection's queue (8 MiB in the agent) interleaves them with heartbeats and other builds'
// logs. After a reconnect the build is retried; its upload's UploadReady says how much of each
// file the master kept, and only the rest is sent.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string_view>

#include <ci/build/runner.h>

#include "master/protocol.h"

namespace ci::worker {

struct UploadContext {
    std::int64_t build = 0;
    int step = 0;
    std::function<void(master::protocol::Message)> send; ///< to the master, in order
    std::function<void(std::string_view)> output;        ///< the step's log
    /// The master's next answer for this step; nullopt at the deadline or a stop.
    std::function<std::optional<master::protocol::Message>()> answer;
    std::stop_token stop;
    std::chrono::steady_clock::time_point deadline;
};

/// Sends `from` (a file or directory; an absolute path) as the results' `upload.to`, and
/// returns how the step ended: Success once the master stored it (and its after_upload
/// succeeded), Failure with the reason otherwise, Cancelled on a stop.
[[nodiscard]] build::StepOutcome send_upload(const UploadContext& context,
                                             const config::Upload& upload,
                                             const std::filesystem::path& from);

} // namespace ci::worker
