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
// on one of a few threads of its own (Options::command_threads; more wait their turn), so that
// a long one delays no other build's upload; its output is returned to the worker for the
// step's log, and it is stopped (as a step is) when its build ends. Every answer goes through
// `reply`. A partial file no open upload uses is deleted by sweep_partials once it was not
// written to for a while (the hourly results sweep).
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
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>

#include "master/metrics.h"
#include "master/protocol.h"
#include "master/results_retention.h"

namespace ci::master {

class Uploads {
public:
    struct Options {
        std::filesystem::path root;                 ///< DATA_DIR/results
        std::uint64_t max_per_build = 0;            ///< buildmaster.max_upload_size
        std::size_t memory_limit = 32 << 20;        ///< chunk bytes queued before add() waits
        std::chrono::seconds command_timeout{3600}; ///< after_upload without a step timeout
        std::size_t command_threads = 4;            ///< after_upload commands run at once
        Metrics* metrics = nullptr;                 ///< the upload counters, when given
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

    /// Deletes the partial files (root/.partial) not written to for `max_age` that no open
    /// upload uses (results_retention.h's sweep_partials). Any thread: an upload beginning
    /// waits for it, and finds what it left.
    SweepReport sweep_partials(WallTime now, std::chrono::seconds max_age);

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
        std::string builder;
        std::string name;
        std::filesystem::path directory; ///< DATA_DIR/results/BUILDER/BRANCH/BUILD/NAME
        std::vector<File> files;
        std::vector<std::string> after_upload;
        std::chrono::seconds timeout{0};
        std::uint64_t received = 0; ///< chunk bytes of this attempt
        std::uint64_t kept = 0;     ///< bytes there already (an earlier attempt)
        std::string error;          ///< the first problem: reported at the end
    };

    // An after_upload to run once its upload is stored, and the answer it completes.
    struct Command {
        std::string worker;
        std::string name;
        std::filesystem::path directory;
        std::vector<std::string> argv;
        std::chrono::seconds timeout{0};
        protocol::UploadDone done;
        std::stop_source stop; ///< asked when its build ends or the master stops
    };

    void run();
    void run_commands();
    void begin(const std::string& worker, const protocol::UploadBegin& message);
    void chunk(const protocol::UploadChunk& message);
    void end(const std::string& worker, const protocol::UploadEnd& message);
    void close(Upload& upload);
    protocol::UploadDone finish(Upload& upload) const;
    static void after_upload(Command& command);

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
    // after_upload commands waiting for a thread, and those queued or running by build (their
    // stop sources); guarded by mutex_.
    std::condition_variable commands_ready_;
    std::deque<Command> commands_;
    std::multimap<std::int64_t, std::stop_source> command_stops_;

    // The partial files open uploads use (file names in root/.partial): a sweep leaves them.
    std::mutex partials_mutex_;
    std::set<std::string> partials_in_use_;

    // The thread's own: the open uploads, by (build, step).
    std::map<std::pair<std::int64_t, int>, Upload> open_;
    std::atomic<std::uint64_t> received_{0};
    std::vector<std::thread> command_threads_;
    std::thread thread_; // last: it uses the members above
};

} // namespace ci::master
