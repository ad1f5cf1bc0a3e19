#pragma once

// Upload steps on the master's side: files a worker sends over its connection (protocol
// UploadBegin, UploadChunk, UploadEnd), written under DATA_DIR/results/BUILDER/BRANCH/BUILD/NAME
// (build/results.h) on a thread of its own, never the network thread's.
//
// Each file is written into a partial file DATA_DIR/results/.partial/SHA256-SIZE (named by what
// the manifest says it holds), at the offsets the worker sends, in order. A partial file stays
// when its build is lost (the worker's connection broke, the master restarted): the build is
// retried, and its upload's UploadBegin finds it and answers (UploadReady) how many bytes are
// there, so the worker sends only the rest. At UploadEnd every file's size and SHA-256 are
// checked (a mismatch deletes the partial file: the next attempt starts it over), the files are
// fsync'd, moved into a staging directory beside NAME, given their modes (without group or
// other write), and the staging directory renamed to NAME: a results directory is complete or
// absent. Then the step's after_upload runs there (ci::run_process, under the step's timeout),
// its output returned to the worker for the step's log. Every answer goes through `reply`.
//
// Refused, with the reason in UploadReady::error (the step fails with it): a NAME or a path
// that build::check_relative_path refuses (absolute, "..", control characters, ...), two
// entries with one path, a SHA-256 that is not 64 hex digits, a NAME the build uploaded
// already, and uploads past buildmaster.max_upload_size for the build (all its upload steps).
// Chunks out of order, past a file's size, or for an upload that is not open end the upload
// with an error reported at its UploadEnd.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <ci/config/config.h>

#include "master/protocol.h"

namespace ci::master {

class Uploads {
public:
    struct Options {
        std::filesystem::path root;                 ///< DATA_DIR/results
        std::uint64_t max_per_build = 0;            ///< buildmaster.max_upload_size
        std::size_t memory_limit = 32 << 20;        ///< chunk bytes queued before add() waits
        std::chrono::seconds command_timeout{3600}; ///< after_upload without a step timeout
    };
    /// `reply(worker, message)`: an answer for the worker that sent the upload.
    using Reply = std::function<void(const std::string& worker, protocol::Message message)>;

    Uploads(const config::Config& config, Options options, Reply reply);
    /// Ends the thread once what is queued is done.
    ~Uploads();
    Uploads(const Uploads&) = delete;
    Uploads& operator=(const Uploads&) = delete;

    /// Build `build` of `builder`, on `branch`, starts: where its results go.
    void started(std::int64_t build, const std::string& builder, const std::string& branch);
    /// An upload message (UploadBegin, UploadChunk or UploadEnd) from `worker`, which runs
    /// `build`; queued for the thread (it waits while too many chunk bytes are queued).
    void add(const std::string& worker, protocol::Message message);
    /// Build `build` ended: its open uploads are closed (their partial files stay).
    void ended(std::int64_t build);

    /// File bytes received and written since the start (chunks), for metrics and tests.
    [[nodiscard]] std::uint64_t bytes_received() const { return received_; }

private:
    struct BuildState {
        std::string builder;
        std::string branch;
        std::uint64_t bytes = 0; ///< what its uploads declared, against max_per_build
    };
    struct File {
        protocol::UploadFile entry;
        std::filesystem::path partial; ///< where its bytes go until the end
        std::int64_t have = 0;         ///< bytes in the partial file
        int fd = -1;                   ///< open while chunks arrive
    };
    struct Upload {
        std::string worker;
        std::int64_t build = 0;
        int step = 0;
        std::string name;
        std::filesystem::path directory; ///< DATA_DIR/results/BUILDER/BRANCH/BUILD/NAME
        std::vector<File> files;
        std::vector<std::string> after_upload;
        std::chrono::seconds timeout{0};
        std::uint64_t received = 0; ///< chunk bytes of this attempt
        std::uint64_t kept = 0;     ///< bytes there already (an earlier attempt)
        std::string error;          ///< the first problem: reported at the end
    };

    void run();
    void begin(const std::string& worker, const protocol::UploadBegin& message);
    void chunk(const protocol::UploadChunk& message);
    void end(const std::string& worker, const protocol::UploadEnd& message);
    static void close(Upload& upload);
    static protocol::UploadDone finish(Upload& upload);
    static void after_upload(Upload& upload, protocol::UploadDone& done);

    const config::Config& config_;
    Options options_;
    Reply reply_;

    std::mutex mutex_;
    std::condition_variable work_;
    std::condition_variable room_;
    std::deque<std::pair<std::string, protocol::Message>> queue_;
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    std::map<std::int64_t, BuildState> builds_; // guarded by mutex_ (started/ended)

    // The thread's own: the open uploads, by (build, step).
    std::map<std::pair<std::int64_t, int>, Upload> open_;
    std::atomic<std::uint64_t> received_{0};
    std::thread thread_; // last: it uses the members above
};

} // namespace ci::master
