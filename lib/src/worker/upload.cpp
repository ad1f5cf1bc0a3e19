#include "worker/upload.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/build/results.h>
#include <ci/core/crypto.h>

namespace ci::worker {

namespace fs = std::filesystem;
namespace protocol = master::protocol;

build::StepOutcome ended(BuildResult result, std::string description) {
    build::StepOutcome outcome;
    outcome.result = result;
    outcome.description = std::move(description);
    return outcome;
}

namespace {

int mode_of(const fs::path& path) {
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0 ? static_cast<int>(info.st_mode & 07777) : 0644;
}

// Adds the regular file `path` as `relative`, with its size and (when `hash`) SHA-256.
Status add_file(UploadScan& scan, const fs::path& path, const std::string& relative, bool hash) {
    std::error_code error;
    const auto size = fs::file_size(path, error);
    if (error) {
        return fail(ErrorCode::Io, fmt::format("{}: {}", path.string(), error.message()));
    }
    std::string sha256;
    if (hash) {
        auto digest = crypto::sha256_file(path);
        if (!digest) {
            return fail(digest.error());
        }
        sha256 = crypto::to_hex(*digest);
    }
    scan.files.push_back(protocol::UploadFile{
        relative, false, static_cast<std::int64_t>(size), mode_of(path), std::move(sha256)});
    scan.sources.push_back(path);
    scan.bytes += size;
    return {};
}

} // namespace

Result<UploadScan>
scan_upload(const fs::path& from, bool hash, const std::function<void(std::string_view)>& output) {
    UploadScan out;
    std::error_code error;
    const auto status = fs::symlink_status(from, error);
    if (error || !fs::exists(status)) {
        return fail(ErrorCode::NotFound, fmt::format("nothing to upload at {}", from.string()));
    }
    if (fs::is_symlink(status)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} is a symbolic link: only regular files and directories are "
                                "uploaded",
                                from.string()));
    }
    if (fs::is_regular_file(status)) {
        if (auto added = add_file(out, from, from.filename().string(), hash); !added) {
            return fail(added.error());
        }
        return out;
    }
    if (!fs::is_directory(status)) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{} is neither a regular file nor a directory", from.string()));
    }
    // Sorted, so that a retried build sends the same manifest in the same order.
    std::vector<fs::directory_entry> entries;
    for (fs::recursive_directory_iterator it(from, error), end; !error && it != end;
         it.increment(error)) {
        entries.push_back(*it);
    }
    if (error) {
        return fail(ErrorCode::Io, fmt::format("read {}: {}", from.string(), error.message()));
    }
    std::ranges::sort(entries, {}, [](const fs::directory_entry& e) { return e.path(); });
    for (const auto& entry : entries) {
        const auto relative = entry.path().lexically_relative(from).generic_string();
        const auto kind = entry.symlink_status(error);
        const auto skip = [&](std::string_view why) {
            ++out.skipped;
            std::string shown = relative;
            std::ranges::replace_if(
                shown, [](char c) { return static_cast<unsigned char>(c) < 0x20; }, '?');
            output(fmt::format("skipped {}: {}\n", shown, why));
        };
        if (auto valid = build::check_relative_path(relative); !valid) {
            skip(valid.error().message);
        } else if (fs::is_symlink(kind)) {
            skip("a symbolic link (only regular files and directories are uploaded)");
        } else if (fs::is_directory(kind)) {
            out.files.push_back(protocol::UploadFile{relative, true, 0, mode_of(entry.path()), {}});
            out.sources.emplace_back();
        } else if (fs::is_regular_file(kind)) {
            if (auto added = add_file(out, entry.path(), relative, hash); !added) {
                return fail(added.error());
            }
        } else {
            skip("not a regular file or a directory");
        }
    }
    return out;
}

namespace {

// The answer of type T, or the outcome that ends the step without one.
template <class T>
std::variant<T, build::StepOutcome> await(const UploadContext& context, std::string_view what) {
    auto answer = context.answer();
    if (answer) {
        if (auto* typed = std::get_if<T>(&*answer)) {
            return std::move(*typed);
        }
        return ended(BuildResult::Exception,
                     fmt::format("the master answered with something else than {}", what));
    }
    if (context.stop.stop_requested()) {
        return ended(BuildResult::Cancelled, "stopped during the upload");
    }
    return ended(BuildResult::Failure, fmt::format("timed out waiting for the master's {}", what));
}

// Sends file `index` from byte `offset`. Empty on success, else the outcome that ends the step.
std::optional<build::StepOutcome> send_file(const UploadContext& context,
                                            const fs::path& source,
                                            std::int64_t index,
                                            std::int64_t offset,
                                            std::int64_t size,
                                            std::uint64_t& sent) {
    const int fd = ::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return ended(BuildResult::Failure,
                     fmt::format("open {}: {}", source.string(), std::strerror(errno)));
    }
    std::optional<build::StepOutcome> outcome;
    while (offset < size) {
        if (context.stop.stop_requested()) {
            outcome = ended(BuildResult::Cancelled, "stopped during the upload");
            break;
        }
        if (std::chrono::steady_clock::now() >= context.deadline) {
            outcome = ended(BuildResult::Failure, "timed out during the upload");
            break;
        }
        protocol::UploadChunk chunk{context.build, context.step, index, offset, {}};
        chunk.data.resize(static_cast<std::size_t>(
            std::min<std::int64_t>(size - offset, protocol::upload_chunk)));
        const auto n = ::pread(fd, chunk.data.data(), chunk.data.size(), offset);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            outcome = ended(
                BuildResult::Failure,
                fmt::format("read {}: {}",
                            source.string(),
                            n == 0 ? "it became shorter while it was sent" : std::strerror(errno)));
            break;
        }
        chunk.data.resize(static_cast<std::size_t>(n));
        offset += n;
        sent += static_cast<std::uint64_t>(n);
        context.send(std::move(chunk));
    }
    ::close(fd);
    return outcome;
}

} // namespace

build::StepOutcome
send_upload(const UploadContext& context, const config::Upload& upload, const fs::path& from) {
    if (upload.to.starts_with("s3://")) {
        return send_to_s3(context, upload, from);
    }
    auto scanned = scan_upload(from, /*hash=*/true, context.output);
    if (!scanned) {
        return ended(BuildResult::Failure, scanned.error().message);
    }
    const auto& files = scanned->files;
    const auto file_count = std::ranges::count(files, false, &protocol::UploadFile::directory);
    context.output(fmt::format("{} files, {} directories, {} bytes{}\n",
                               file_count,
                               files.size() - static_cast<std::size_t>(file_count),
                               scanned->bytes,
                               scanned->skipped > 0
                                   ? fmt::format(" ({} entries skipped)", scanned->skipped)
                                   : std::string()));
    protocol::UploadBegin begin{context.build, context.step, upload.to, files};
    if (protocol::encode(begin).size() > protocol::max_line) {
        return ended(BuildResult::Failure,
                     fmt::format("the list of {} files and directories is longer than a worker "
                                 "protocol line may be ({} bytes): upload fewer at a time (an "
                                 "archive of them)",
                                 files.size(),
                                 protocol::max_line));
    }
    context.send(std::move(begin));
    auto ready = await<protocol::UploadReady>(context, "answer to the upload's beginning");
    if (auto* outcome = std::get_if<build::StepOutcome>(&ready)) {
        return std::move(*outcome);
    }
    const auto& have = std::get<protocol::UploadReady>(ready);
    if (!have.error.empty()) {
        return ended(BuildResult::Failure, "the master refused the upload: " + have.error);
    }
    if (have.have.size() != files.size()) {
        return ended(BuildResult::Exception,
                     "the master's answer does not match the upload's list of files");
    }
    std::uint64_t kept = 0;
    std::uint64_t sent = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (files[i].directory) {
            continue;
        }
        const auto offset = std::min(have.have[i], files[i].size);
        kept += static_cast<std::uint64_t>(offset);
        if (auto failed = send_file(context,
                                    scanned->sources[i],
                                    static_cast<std::int64_t>(i),
                                    offset,
                                    files[i].size,
                                    sent)) {
            return std::move(*failed);
        }
    }
    context.output(fmt::format("sent {} bytes{}\n",
                               sent,
                               kept > 0 ? fmt::format("; {} bytes were on the master already "
                                                      "(an earlier attempt): not sent again",
                                                      kept)
                                        : std::string()));
    context.send(protocol::UploadEnd{context.build, context.step});
    auto done = await<protocol::UploadDone>(context, "answer to the upload's end");
    if (auto* outcome = std::get_if<build::StepOutcome>(&done)) {
        return std::move(*outcome);
    }
    auto& answer = std::get<protocol::UploadDone>(done);
    if (!answer.log.empty()) {
        context.output(answer.log);
    }
    return ended(answer.result, std::move(answer.description));
}

} // namespace ci::worker
