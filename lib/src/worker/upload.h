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
//
// An upload to `s3://BUCKET/PREFIX` goes from the worker to S3 itself (send_to_s3): the same
// files (found the same way), each as the object PREFIX/RELATIVE-PATH, with libci's S3 client
// and the credentials of the worker's environment (the AWS CLI's chain: AWS_ACCESS_KEY_ID /
// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, ~/.aws/credentials, the instance role), region
// AWS_REGION or AWS_DEFAULT_REGION (default us-east-1), endpoint AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL (default AWS's); files above aws::default_part_size go as multipart
// uploads. Nothing goes through the master.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include <ci/aws/credentials.h>
#include <ci/build/runner.h>
#include <ci/core/error.h>

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

/// What an upload sends: its regular files and directories, sorted by path.
struct UploadScan {
    std::vector<master::protocol::UploadFile> files; ///< relative paths; sha256 when hashed
    std::vector<std::filesystem::path> sources; ///< the file each entry is read from ("" for dirs)
    std::uint64_t bytes = 0;
    std::size_t skipped = 0;
};

/// Finds what `from` (a file or a directory) holds without following symbolic links; each entry
/// skipped (a link, a device, a FIFO, a socket, a refused name) is named in `output`. Fails when
/// `from` is missing, a symbolic link, or neither a file nor a directory. `hash`: compute each
/// file's SHA-256 (what the master checks).
[[nodiscard]] Result<UploadScan> scan_upload(const std::filesystem::path& from,
                                             bool hash,
                                             const std::function<void(std::string_view)>& output);

/// A step outcome with `result` and `description`.
[[nodiscard]] build::StepOutcome ended(BuildResult result, std::string description);

/// `s3://BUCKET/PREFIX` split: the bucket, and the prefix without a trailing '/' (maybe empty).
struct S3Destination {
    std::string bucket;
    std::string prefix;
    friend bool operator==(const S3Destination&, const S3Destination&) = default;
};
[[nodiscard]] S3Destination parse_s3_destination(std::string_view to);

/// The object key of the file at `relative` under `prefix`: "PREFIX/RELATIVE", or RELATIVE.
[[nodiscard]] std::string s3_key(std::string_view prefix, std::string_view relative);

/// Sends the files of `from` to the S3 destination `upload.to` (see above), with the S3 client
/// and credentials the environment `env` describes. Success when every file is stored; Failure
/// naming the file, its key and S3's answer (error code) when one is not (files sent before it
/// stay in S3); Cancelled on a stop, Failure at the deadline (a multipart upload in progress is
/// aborted either way). Progress (files, bytes) goes to context.output; secrets never do.
[[nodiscard]] build::StepOutcome
send_to_s3(const UploadContext& context,
           const config::Upload& upload,
           const std::filesystem::path& from,
           const aws::EnvironmentLookup& env = aws::process_environment());

/// Sends `from` (a file or directory; an absolute path) as the results' `upload.to`, and
/// returns how the step ended: Success once the master stored it (and its after_upload
/// succeeded), Failure with the reason otherwise, Cancelled on a stop.
[[nodiscard]] build::StepOutcome send_upload(const UploadContext& context,
                                             const config::Upload& upload,
                                             const std::filesystem::path& from);

} // namespace ci::worker
