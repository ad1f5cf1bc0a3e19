#include "ci/config/worker_files.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <sys/stat.h>

#include "config/file.h"

namespace ci::config {

Status check_worker_file_destination(std::string_view destination) {
    if (destination.empty()) {
        return fail(ErrorCode::InvalidArgument, "a worker file's path cannot be empty");
    }
    if (destination.size() > max_worker_file_path) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("longer than {} bytes", max_worker_file_path));
    }
    if (std::ranges::any_of(destination, [](char c) {
            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
        })) {
        return fail(ErrorCode::InvalidArgument, "holds a control character");
    }
    std::string_view rest = destination;
    if (rest.front() == '/') {
        rest.remove_prefix(1);
        if (rest.empty()) {
            return fail(ErrorCode::InvalidArgument, "\"/\" is a directory, not a file");
        }
    }
    while (true) {
        const auto slash = rest.find('/');
        const auto segment = rest.substr(0, slash);
        if (segment.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        R"(has an empty segment ("//" or a trailing "/"))");
        }
        if (segment == "." || segment == "..") {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("has a \"{}\" segment: write the path without it", segment));
        }
        if (slash == std::string_view::npos) {
            return {};
        }
        rest.remove_prefix(slash + 1);
    }
}

Status check_worker_file_destinations(const std::map<std::string, std::string>& files) {
    // In sorted order a directory comes right before the paths under it ('/' sorts before
    // every character a name may follow with, but "a-b" may sit between "a" and "a/b": look
    // at every later key that starts with "a").
    for (auto it = files.begin(); it != files.end(); ++it) {
        const std::string prefix = it->first + "/";
        for (auto next = std::next(it); next != files.end() && next->first.starts_with(it->first);
             ++next) {
            if (next->first.starts_with(prefix)) {
                return fail(ErrorCode::InvalidArgument,
                            fmt::format(R"("{}" is a directory of "{}": a file cannot be both)",
                                        it->first,
                                        next->first));
            }
        }
    }
    return {};
}

const std::map<std::string, std::string>& worker_files_of(const WorkerClass& worker_class) {
    static const std::map<std::string, std::string> none;
    if (const auto* ec2 = std::get_if<Ec2Workers>(&worker_class)) {
        return ec2->worker_files;
    }
    if (const auto* fixed = std::get_if<StaticWorkers>(&worker_class)) {
        return fixed->worker_files;
    }
    return none;
}

Result<std::vector<WorkerFileContent>>
read_worker_files(std::string_view worker_class, const std::map<std::string, std::string>& files) {
    std::vector<WorkerFileContent> out;
    std::size_t total = 0;
    for (const auto& [destination, source] : files) {
        const auto where = fmt::format("slaves.{}.worker_files.{}", worker_class, destination);
        // A FIFO or a device would block or never end: only regular files (symbolic links to
        // them are followed: the master's own disk is trusted).
        struct stat info {};
        if (::stat(source.c_str(), &info) != 0) {
            const int error = errno;
            return fail(error == ENOENT || error == ENOTDIR ? ErrorCode::NotFound
                        : error == EACCES                   ? ErrorCode::PermissionDenied
                                                            : ErrorCode::Io,
                        fmt::format("{}: read {}: {}", where, source, std::strerror(error)),
                        error);
        }
        if (!S_ISREG(info.st_mode)) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("{}: {} is not a regular file", where, source));
        }
        auto content = detail::read_text_file(source, "read", max_worker_file_size + 1);
        if (!content) {
            return fail(content.error().code,
                        fmt::format("{}: {}", where, content.error().message),
                        content.error().native);
        }
        if (content->size() > max_worker_file_size) {
            return fail(
                ErrorCode::InvalidArgument,
                fmt::format(
                    "{}: {} is larger than {} bytes (1 MiB)", where, source, max_worker_file_size));
        }
        total += content->size();
        if (total > max_worker_files_size) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("{}: the class's worker files are larger than {} bytes (4 "
                                    "MiB) together",
                                    where,
                                    max_worker_files_size));
        }
        out.push_back(WorkerFileContent{destination, std::move(*content)});
    }
    return out;
}

std::vector<std::string> worker_file_secrets(std::string_view content) {
    constexpr std::size_t min_line = 16;
    // Every secret costs each log line and each chunk of build output a search: a large file
    // of short lines would make redaction slow. Its first lines (a key is about 50) are kept.
    constexpr std::size_t max_lines = 128;
    std::vector<std::string> out;
    std::string_view whole = content;
    while (!whole.empty() && (whole.back() == '\n' || whole.back() == '\r')) {
        whole.remove_suffix(1);
    }
    if (!whole.empty()) {
        out.emplace_back(whole);
    }
    std::string_view rest = content;
    while (!rest.empty()) {
        const auto end = rest.find('\n');
        auto line = rest.substr(0, end);
        rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        const bool blank_free = std::ranges::none_of(
            line, [](char c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f'; });
        if (line.size() >= min_line && blank_free && line != whole && out.size() <= max_lines) {
            out.emplace_back(line);
        }
    }
    return out;
}

} // namespace ci::config
