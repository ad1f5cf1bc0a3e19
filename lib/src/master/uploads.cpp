#include "master/uploads.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>

#include <ci/build/results.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/core/process.h>

namespace ci::master {

namespace fs = std::filesystem;

namespace {

// The most of after_upload's output kept for the step's log (its end, where errors are).
constexpr std::size_t max_command_log = std::size_t{64} * 1024;

bool is_sha256(std::string_view hex) {
    return hex.size() == 64 && std::ranges::all_of(hex, [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

std::string errno_text() {
    return std::strerror(errno);
}

// fsync of a directory (a rename in it is durable).
void sync_directory(const fs::path& directory) {
    const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)::fsync(fd);
        ::close(fd);
    }
}

std::size_t bytes_of(const protocol::Message& message) {
    const auto* chunk = std::get_if<protocol::UploadChunk>(&message);
    return chunk != nullptr ? chunk->data.size() : 0;
}

} // namespace

Uploads::Uploads(const config::Config& config, Options options, Reply reply)
    : config_(config), options_(std::move(options)), reply_(std::move(reply)),
      thread_([this] { run(); }) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, options_.command_threads); ++i) {
        command_threads_.emplace_back([this] { run_commands(); });
    }
}

Uploads::~Uploads() {
    {
        const std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& [build, stop] : command_stops_) {
            stop.request_stop(); // a running after_upload is stopped as a step is
        }
    }
    work_.notify_all();
    room_.notify_all();
    commands_ready_.notify_all();
    thread_.join();
    for (auto& thread : command_threads_) {
        thread.join();
    }
    for (auto& [key, upload] : open_) {
        close(upload);
    }
}

void Uploads::started(std::int64_t build, const std::string& builder, const std::string& branch) {
    const std::lock_guard lock(mutex_);
    builds_[build] = BuildState{builder, branch, 0};
}

void Uploads::add(const std::string& worker, protocol::Message message) {
    const auto size = bytes_of(message);
    std::unique_lock lock(mutex_);
    // Back-pressure: the worker's connection waits here while the disk is behind.
    room_.wait(lock, [&] { return stopping_ || queued_bytes_ <= options_.memory_limit; });
    if (stopping_) {
        return;
    }
    queued_bytes_ += size;
    queue_.emplace_back(worker, std::move(message));
    lock.unlock();
    work_.notify_one();
}

void Uploads::ended(std::int64_t build) {
    {
        const std::lock_guard lock(mutex_);
        builds_.erase(build);
        // Its after_upload, if one still runs or waits, is for nobody now.
        const auto [first, last] = command_stops_.equal_range(build);
        for (auto it = first; it != last; ++it) {
            it->second.request_stop();
        }
    }
    // Its open uploads are closed on the thread, in order after its last messages.
    add({}, protocol::UploadEnd{build, -1});
}

void Uploads::run() {
    for (;;) {
        std::pair<std::string, protocol::Message> next;
        {
            std::unique_lock lock(mutex_);
            work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) {
                return;
            }
            next = std::move(queue_.front());
            queue_.pop_front();
            queued_bytes_ -= bytes_of(next.second);
        }
        room_.notify_all();
        auto& [worker, message] = next;
        if (const auto* begin_message = std::get_if<protocol::UploadBegin>(&message)) {
            begin(worker, *begin_message);
        } else if (const auto* chunk_message = std::get_if<protocol::UploadChunk>(&message)) {
            chunk(*chunk_message);
        } else if (const auto* end_message = std::get_if<protocol::UploadEnd>(&message)) {
            if (end_message->step < 0) {
                // The build ended (ended()): close what it left open.
                for (auto it = open_.begin(); it != open_.end();) {
                    if (it->first.first == end_message->build) {
                        close(it->second);
                        it = open_.erase(it);
                    } else {
                        ++it;
                    }
                }
            } else {
                end(worker, *end_message);
            }
        }
    }
}

void Uploads::run_commands() {
    for (;;) {
        Command command;
        {
            std::unique_lock lock(mutex_);
            commands_ready_.wait(lock, [&] { return stopping_ || !commands_.empty(); });
            if (stopping_) {
                return;
            }
            command = std::move(commands_.front());
            commands_.pop_front();
        }
        const bool wanted = !command.stop.stop_requested(); // its build did not end meanwhile
        if (wanted) {
            after_upload(command);
        }
        {
            const std::lock_guard lock(mutex_);
            const auto [first, last] = command_stops_.equal_range(command.done.build);
            for (auto it = first; it != last; ++it) {
                if (it->second == command.stop) {
                    command_stops_.erase(it);
                    break;
                }
            }
        }
        if (wanted) {
            reply_(command.worker, std::move(command.done));
        }
    }
}

SweepReport Uploads::sweep_partials(WallTime now, std::chrono::seconds max_age) {
    const std::lock_guard lock(partials_mutex_);
    return master::sweep_partials(options_.root / ".partial", now, max_age, partials_in_use_);
}

void Uploads::begin(const std::string& worker, const protocol::UploadBegin& message) {
    protocol::UploadReady ready{message.build, message.step, {}, {}};
    std::string known_builder; // once the build is known
    const auto refuse = [&](std::string why) {
        log::warn("build {} step {}: upload refused: {}", message.build, message.step, why);
        if (options_.metrics != nullptr && !known_builder.empty()) {
            options_.metrics->upload_failed(known_builder);
        }
        ready.error = std::move(why);
        reply_(worker, std::move(ready));
    };
    const auto key = std::pair(message.build, message.step);
    if (auto found = open_.find(key); found != open_.end()) {
        close(found->second); // the same step begins again: the earlier attempt is over
        open_.erase(found);
    }
    BuildState state;
    {
        const std::lock_guard lock(mutex_);
        const auto found = builds_.find(message.build);
        if (found == builds_.end()) {
            return refuse("the master does not know this build as running");
        }
        state = found->second;
    }
    known_builder = state.builder;
    if (auto valid = build::check_relative_path(message.name); !valid) {
        return refuse("the upload's name " + valid.error().message);
    }
    std::uint64_t total = 0;
    std::set<std::string_view> paths;
    for (const auto& file : message.files) {
        if (auto valid = build::check_relative_path(file.path); !valid) {
            return refuse("a file's path " + valid.error().message);
        }
        if (!paths.insert(file.path).second) {
            return refuse(fmt::format("\"{}\" is in the upload twice", file.path));
        }
        if (!file.directory && !is_sha256(file.sha256)) {
            return refuse(fmt::format("\"{}\": its sha256 is not 64 hex digits", file.path));
        }
        total += static_cast<std::uint64_t>(file.size);
    }
    Upload upload;
    upload.worker = worker;
    upload.build = message.build;
    upload.step = message.step;
    upload.builder = state.builder;
    upload.name = message.name;
    upload.directory = options_.root /
                       build::results_path(state.builder, state.branch, message.build) /
                       message.name;
    std::error_code error;
    if (fs::exists(upload.directory, error)) {
        return refuse(fmt::format("this build uploaded \"{}\" already", message.name));
    }
    {
        const std::lock_guard lock(mutex_);
        const auto found = builds_.find(message.build);
        if (found == builds_.end()) {
            return refuse("the build ended");
        }
        auto& build_state = found->second;
        if (build_state.bytes + total > options_.max_per_build) {
            return refuse(fmt::format(
                "{} bytes is over the master's limit for a build's uploads "
                "(buildmaster.max_upload_size: {} bytes{})",
                total,
                options_.max_per_build,
                build_state.bytes > 0
                    ? fmt::format(", {} of them uploaded already by this build", build_state.bytes)
                    : std::string()));
        }
        build_state.bytes += total;
    }
    if (const auto builder = config_.builders.find(state.builder);
        builder != config_.builders.end() && message.step >= 1 &&
        static_cast<std::size_t>(message.step) <= builder->second.steps.size()) {
        const auto& step = builder->second.steps[static_cast<std::size_t>(message.step) - 1];
        upload.after_upload = step.after_upload;
        upload.timeout = step.timeout.value_or(options_.command_timeout);
    }
    const auto partials = options_.root / ".partial";
    fs::create_directories(partials, error);
    if (error) {
        return refuse(fmt::format("create {}: {}", partials.string(), error.message()));
    }
    // A partial file another open upload writes is not shared: this one starts its own. The
    // files this upload uses are in use (no sweep deletes them) until it is closed.
    const std::lock_guard partials_lock(partials_mutex_);
    for (const auto& entry : message.files) {
        File file{entry, {}, 0, -1};
        if (!entry.directory) {
            auto name = fmt::format("{}-{}", entry.sha256, entry.size);
            if (partials_in_use_.contains(name)) {
                name += fmt::format("-{}-{}-{}", message.build, message.step, upload.files.size());
                fs::remove(partials / name, error);
            }
            partials_in_use_.insert(name);
            file.partial = partials / name;
            const auto size = fs::file_size(file.partial, error);
            if (!error) {
                // Kept from an earlier attempt; more than the file can hold is not its.
                file.have = std::min<std::int64_t>(static_cast<std::int64_t>(size), entry.size);
                if (static_cast<std::int64_t>(size) > entry.size) {
                    fs::resize_file(file.partial, static_cast<std::uintmax_t>(entry.size), error);
                }
                upload.kept += static_cast<std::uint64_t>(file.have);
            }
        }
        ready.have.push_back(file.have);
        upload.files.push_back(std::move(file));
    }
    log::info("build {} step {}: upload \"{}\" of {} files and directories, {} bytes ({} kept "
              "from an earlier attempt)",
              message.build,
              message.step,
              message.name,
              message.files.size(),
              total,
              upload.kept);
    open_.emplace(key, std::move(upload));
    reply_(worker, std::move(ready));
}

void Uploads::chunk(const protocol::UploadChunk& message) {
    const auto found = open_.find({message.build, message.step});
    if (found == open_.end()) {
        return; // refused at its beginning, or closed: nothing to write to
    }
    auto& upload = found->second;
    if (!upload.error.empty()) {
        return;
    }
    if (message.file < 0 || static_cast<std::size_t>(message.file) >= upload.files.size()) {
        upload.error =
            fmt::format("a chunk for file {}, which is not in the manifest", message.file);
        return;
    }
    auto& file = upload.files[static_cast<std::size_t>(message.file)];
    const auto size = static_cast<std::int64_t>(message.data.size());
    if (file.entry.directory || message.offset != file.have || file.have + size > file.entry.size) {
        upload.error = fmt::format("\"{}\": a chunk of {} bytes at offset {} does not follow the "
                                   "{} bytes there (of {})",
                                   file.entry.path,
                                   size,
                                   message.offset,
                                   file.have,
                                   file.entry.size);
        return;
    }
    if (file.fd < 0) {
        file.fd = ::open(file.partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (file.fd < 0) {
            upload.error = fmt::format("open {}: {}", file.partial.string(), errno_text());
            return;
        }
    }
    std::size_t written = 0;
    while (written < message.data.size()) {
        const auto n = ::pwrite(file.fd,
                                message.data.data() + written,
                                message.data.size() - written,
                                static_cast<off_t>(file.have) + static_cast<off_t>(written));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            upload.error = fmt::format("write {}: {}", file.partial.string(), errno_text());
            return;
        }
        written += static_cast<std::size_t>(n);
    }
    file.have += size;
    upload.received += message.data.size();
    received_ += message.data.size();
    if (options_.metrics != nullptr) {
        options_.metrics->upload_received(upload.builder, message.data.size());
    }
}

void Uploads::end(const std::string& worker, const protocol::UploadEnd& message) {
    const auto found = open_.find({message.build, message.step});
    if (found == open_.end()) {
        reply_(worker,
               protocol::UploadDone{message.build,
                                    message.step,
                                    BuildResult::Exception,
                                    "the master has no open upload for this step",
                                    {}});
        return;
    }
    auto& upload = found->second;
    auto done = finish(upload);
    if (done.result != BuildResult::Success || upload.after_upload.empty()) {
        close(upload);
        open_.erase(found);
        reply_(worker, std::move(done));
        return;
    }
    // Its after_upload runs on a thread of the commands' own: other uploads go on meanwhile.
    Command command{worker,
                    upload.name,
                    upload.directory,
                    upload.after_upload,
                    upload.timeout,
                    std::move(done),
                    std::stop_source{}};
    close(upload);
    open_.erase(found);
    {
        const std::lock_guard lock(mutex_);
        if (stopping_ || !builds_.contains(command.done.build)) {
            return; // the master stops, or the build ended: nobody waits for it
        }
        command_stops_.emplace(command.done.build, command.stop);
        commands_.push_back(std::move(command));
    }
    commands_ready_.notify_one();
}

void Uploads::close(Upload& upload) {
    const std::lock_guard lock(partials_mutex_);
    for (auto& file : upload.files) {
        if (file.fd >= 0) {
            ::close(file.fd);
            file.fd = -1;
        }
        if (!file.partial.empty()) {
            partials_in_use_.erase(file.partial.filename().string());
        }
    }
}

protocol::UploadDone Uploads::finish(Upload& upload) const {
    protocol::UploadDone done{upload.build, upload.step, BuildResult::Success, {}, {}};
    const auto failed = [&](std::string why) {
        log::warn("build {} step {}: upload \"{}\" failed: {}",
                  upload.build,
                  upload.step,
                  upload.name,
                  why);
        done.result = BuildResult::Failure;
        done.description = std::move(why);
        if (options_.metrics != nullptr) {
            options_.metrics->upload_failed(upload.builder);
        }
        return done;
    };
    if (!upload.error.empty()) {
        return failed(upload.error);
    }
    for (auto& file : upload.files) {
        if (file.entry.directory) {
            continue;
        }
        if (file.have != file.entry.size) {
            return failed(fmt::format(
                "\"{}\": {} of its {} bytes arrived", file.entry.path, file.have, file.entry.size));
        }
        if (file.fd < 0) {
            // All of it was kept from an earlier attempt, or it is empty.
            file.fd = ::open(file.partial.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        }
        if (file.fd < 0 || ::fsync(file.fd) != 0) {
            return failed(fmt::format("fsync {}: {}", file.partial.string(), errno_text()));
        }
        auto digest = crypto::sha256_file(file.partial);
        if (!digest) {
            return failed(digest.error().message);
        }
        if (crypto::to_hex(*digest) != file.entry.sha256) {
            std::error_code ignored;
            fs::remove(file.partial, ignored); // the next attempt sends it whole
            return failed(fmt::format("\"{}\": its SHA-256 is {}, not the {} the worker sent "
                                      "(the file changed while it was sent, or was damaged)",
                                      file.entry.path,
                                      crypto::to_hex(*digest),
                                      file.entry.sha256));
        }
    }
    // Everything arrived whole: into a staging directory, then renamed into place at once.
    std::error_code error;
    const auto parent = upload.directory.parent_path();
    fs::create_directories(parent, error);
    if (error) {
        return failed(fmt::format("create {}: {}", parent.string(), error.message()));
    }
    const auto staging =
        parent / fmt::format(".{}.partial-{}", upload.directory.filename().string(), upload.step);
    fs::remove_all(staging, error);
    fs::create_directory(staging, error);
    if (error) {
        return failed(fmt::format("create {}: {}", staging.string(), error.message()));
    }
    for (auto& file : upload.files) {
        const auto target = staging / file.entry.path;
        fs::create_directories(file.entry.directory ? target : target.parent_path(), error);
        if (!error && !file.entry.directory) {
            fs::rename(file.partial, target, error);
        }
        if (error) {
            return failed(fmt::format("{}: {}", target.string(), error.message()));
        }
        // No set-id bits, and no writing by group or others, whatever the worker's modes.
        const auto mode = static_cast<fs::perms>(file.entry.mode & 0755) | fs::perms::owner_read |
                          (file.entry.directory ? fs::perms::owner_all : fs::perms::owner_write);
        fs::permissions(target, mode, error);
    }
    fs::rename(staging, upload.directory, error);
    if (error) {
        return failed(fmt::format(
            "rename {} to {}: {}", staging.string(), upload.directory.string(), error.message()));
    }
    sync_directory(parent);
    log::info("build {} step {}: upload \"{}\" stored in {}: {} bytes received, {} kept from an "
              "earlier attempt",
              upload.build,
              upload.step,
              upload.name,
              upload.directory.string(),
              upload.received,
              upload.kept);
    std::size_t files = 0;
    for (const auto& file : upload.files) {
        files += file.entry.directory ? 0 : 1;
    }
    done.description = fmt::format("{} files stored as results {} ({} bytes sent, {} resumed)",
                                   files,
                                   upload.name,
                                   upload.received,
                                   upload.kept);
    if (options_.metrics != nullptr) {
        options_.metrics->upload_stored(upload.builder, files);
    }
    return done;
}

void Uploads::after_upload(Command& command) {
    auto& done = command.done;
    std::string output;
    bool cut = false;
    ProcessSpec spec;
    spec.argv = command.argv;
    spec.cwd = command.directory.string();
    spec.merge_stderr = true;
    spec.timeout = command.timeout;
    spec.stop = command.stop.get_token();
    spec.on_output = [&](OutputStream, std::string_view text) {
        output += text;
        if (output.size() > 2 * max_command_log) {
            output.erase(0, output.size() - max_command_log);
            cut = true;
        }
    };
    const auto shown = command.argv.size() == 3 && command.argv[0] == "/bin/sh"
                           ? command.argv[2]
                           : fmt::format("{}", fmt::join(command.argv, " "));
    done.log = fmt::format("$ after_upload (on the master, in {}): {}\n", command.name, shown);
    const auto result = run_process(spec);
    if (output.size() > max_command_log) {
        output.erase(0, output.size() - max_command_log);
        cut = true;
    }
    if (cut) {
        done.log += fmt::format("[... the first part of its output is not kept: the last {} "
                                "bytes follow]\n",
                                max_command_log);
    }
    done.log += output;
    if (!output.empty() && output.back() != '\n') {
        done.log += '\n';
    }
    if (!result) {
        done.result = BuildResult::Failure;
        done.description = "after_upload could not start: " + result.error().message;
    } else if (!result->success()) {
        done.result = BuildResult::Failure;
        done.description = "after_upload " + result->describe();
    } else {
        done.description += "; after_upload succeeded";
    }
    log::info("build {} step {}: after_upload: {}", done.build, done.step, done.description);
}

} // namespace ci::master
