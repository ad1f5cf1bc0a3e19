// GET /results/...: the results tree (DATA_DIR/results) served read-only. The path is checked
// by parse_results_target (results.cpp) and then walked one segment at a time with openat and
// O_NOFOLLOW from a descriptor of the tree's root, so no symbolic link is ever followed (one in
// the path is a 404, one in a listing is left out) and nothing outside the tree is reached.
// Files are streamed in 256 KiB pieces with flow control (ResponseStream::when_drained): a
// download holds at most about 512 KiB of the file in memory whatever its size.

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <memory>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>
#include <sys/stat.h>

#include <ci/core/log.h>

#include "core/fd.h"
#include "master/json.h"
#include "master/results.h"
#include "master/services.h"

namespace ci::master {

namespace {

constexpr std::size_t piece_size = std::size_t{256} * 1024;

/// Opens `name` in the directory `dir` without following a symbolic link.
Fd open_at(int dir, const char* name) {
    return Fd(::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY));
}

/// Sends a file's bytes [offset, offset + remaining) through a sized stream, one piece at a
/// time, waiting for the client to take what was queued before reading more.
class FileSender : public std::enable_shared_from_this<FileSender> {
public:
    FileSender(Fd file,
               std::uint64_t offset,
               std::uint64_t remaining,
               std::shared_ptr<http::ResponseStream> stream)
        : file_(std::move(file)), offset_(offset), remaining_(remaining),
          stream_(std::move(stream)) {}

    void pump() {
        while (remaining_ > 0 && !stream_->closed()) {
            std::string piece(
                static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, piece_size)), '\0');
            const auto got =
                ::pread(file_.get(), piece.data(), piece.size(), static_cast<off_t>(offset_));
            if (got <= 0) {
                // Truncated or unreadable since it was opened: finishing short of the
                // Content-Length closes the connection, which tells the client.
                log::warn("results: reading a file failed after {} bytes: {}",
                          offset_,
                          got < 0 ? std::strerror(errno) : "it ended early");
                break;
            }
            piece.resize(static_cast<std::size_t>(got));
            offset_ += static_cast<std::uint64_t>(got);
            remaining_ -= static_cast<std::uint64_t>(got);
            if (!stream_->write(std::move(piece))) {
                return;
            }
            if (remaining_ > 0 &&
                stream_->when_drained(piece_size, [self = shared_from_this()] { self->pump(); })) {
                return; // resumed once the client has taken what is queued
            }
        }
        stream_->finish();
    }

private:
    Fd file_;
    std::uint64_t offset_;
    std::uint64_t remaining_;
    std::shared_ptr<http::ResponseStream> stream_;
};

http::ServerResponse text_response(int status, std::string body) {
    http::ServerResponse response;
    response.status = status;
    response.content_type = "text/plain; charset=utf-8";
    response.body = std::move(body) + "\n";
    return response;
}

http::ServerResponse not_found(std::string_view path) {
    return text_response(404, fmt::format("no such result: {}", log::field(path)));
}

std::string url_of(const ResultsPath& path, bool directory) {
    std::string url = "/results/";
    for (const auto& segment : path.segments) {
        url += percent_encode_segment(segment);
        url += '/';
    }
    if (!directory && !path.segments.empty()) {
        url.pop_back();
    }
    return url;
}

/// The listing of the open directory `dir` (which it consumes): files and directories, never
/// symbolic links or other kinds.
void send_listing(Fd dir, const ResultsPath& path, http::Reply reply) {
    const int fd = dir.release();
    DIR* stream = ::fdopendir(fd);
    if (stream == nullptr) {
        ::close(fd);
        reply.send(text_response(500, "cannot list the directory"));
        return;
    }
    std::vector<ListingEntry> entries;
    while (const dirent* entry = ::readdir(stream)) {
        const std::string_view name = entry->d_name;
        if (name == "." || name == "..") {
            continue;
        }
        struct stat info {};
        if (::fstatat(::dirfd(stream), entry->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) {
            continue;
        }
        if (!S_ISDIR(info.st_mode) && !S_ISREG(info.st_mode)) {
            continue; // symbolic links, sockets, devices: never served, so never listed
        }
        entries.push_back(ListingEntry{std::string(name),
                                       S_ISDIR(info.st_mode),
                                       static_cast<std::uint64_t>(info.st_size),
                                       static_cast<std::int64_t>(info.st_mtime)});
    }
    ::closedir(stream);
    http::ServerResponse response;
    response.content_type = "text/html; charset=utf-8";
    response.body = listing_html(url_of(path, true), std::move(entries));
    reply.send(std::move(response));
}

void send_file(Fd file,
               const struct stat& info,
               std::string_view name,
               const http::ServerRequest& request,
               http::Reply reply) {
    const auto size = static_cast<std::uint64_t>(info.st_size);
    // A build's file is the build's content, not the master's: not the master's strict default
    // policy (an HTML report keeps its own styles, scripts and images), but a sandbox, so that
    // it runs in an origin of its own and cannot act as the viewer on the master's pages.
    std::vector<std::pair<std::string, std::string>> headers{
        {"Accept-Ranges", "bytes"},
        {"Content-Security-Policy", "sandbox allow-scripts allow-popups; frame-ancestors 'none'"}};
    const auto range = parse_range(request.header("range"), size);
    if (range.kind == RangeRequest::Kind::Unsatisfiable) {
        auto response = text_response(416, fmt::format("the file has {} bytes", size));
        response.headers.emplace_back("Content-Range", fmt::format("bytes */{}", size));
        reply.send(std::move(response));
        return;
    }
    int status = 200;
    std::uint64_t first = 0;
    std::uint64_t length = size;
    if (range.kind == RangeRequest::Kind::Partial) {
        status = 206;
        first = range.range.first;
        length = range.range.last - range.range.first + 1;
        headers.emplace_back(
            "Content-Range",
            fmt::format("bytes {}-{}/{}", range.range.first, range.range.last, size));
    }
    auto stream = reply.stream_sized(
        status, std::string(results_content_type(name)), length, std::move(headers));
    std::make_shared<FileSender>(std::move(file), first, length, std::move(stream))->pump();
}

void serve(const std::filesystem::path& root,
           const http::ServerRequest& request,
           http::Reply reply) {
    auto path = parse_results_target(request.target);
    if (!path) {
        reply.send(text_response(
            400, fmt::format("refused {}: {}", log::field(request.path), path.error().message)));
        return;
    }
    auto current = Fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!current.valid()) {
        if (errno == ENOENT && path->segments.empty()) {
            // No result was ever stored: the tree is empty, not missing.
            http::ServerResponse response;
            response.content_type = "text/html; charset=utf-8";
            response.body = listing_html(url_of(*path, true), {});
            reply.send(std::move(response));
            return;
        }
        reply.send(not_found(request.path));
        return;
    }
    for (const auto& segment : path->segments) {
        auto next = open_at(current.get(), segment.c_str());
        if (!next.valid()) {
            reply.send(not_found(request.path)); // absent, a symbolic link, or unreadable
            return;
        }
        current = std::move(next);
    }
    struct stat info {};
    if (::fstat(current.get(), &info) != 0) {
        reply.send(not_found(request.path));
        return;
    }
    if (S_ISDIR(info.st_mode)) {
        if (!path->trailing_slash) {
            // Relative links in the listing (and in an index.html) need the slash.
            http::ServerResponse response = text_response(301, "moved");
            response.headers.emplace_back("Location", url_of(*path, true));
            reply.send(std::move(response));
            return;
        }
        auto index = open_at(current.get(), "index.html");
        struct stat index_info {};
        if (index.valid() && ::fstat(index.get(), &index_info) == 0 &&
            S_ISREG(index_info.st_mode)) {
            send_file(std::move(index), index_info, "index.html", request, std::move(reply));
            return;
        }
        send_listing(std::move(current), *path, std::move(reply));
        return;
    }
    if (!S_ISREG(info.st_mode) || path->trailing_slash) {
        reply.send(not_found(request.path));
        return;
    }
    send_file(std::move(current), info, path->segments.back(), request, std::move(reply));
}

} // namespace

void add_results_routes(Router& router, const std::filesystem::path& results_dir) {
    router.add(
        "GET",
        "/results/{path...}",
        [root = results_dir](http::ServerRequest& request, const PathParams&, http::Reply reply) {
            serve(root, request, std::move(reply));
        },
        false,
        "/results/");
}

} // namespace ci::master
