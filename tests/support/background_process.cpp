#include "support/background_process.h"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <stdexcept>
#include <thread>
#include <unistd.h>

#include <fmt/format.h>
#include <sys/wait.h>

namespace ci::test {

BackgroundProcess::BackgroundProcess(std::vector<std::string> argv,
                                     const std::map<std::string, std::string>& env) {
    std::array<int, 2> fds{};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    std::vector<std::string> environment;
    for (char** entry = environ; *entry != nullptr; ++entry) {
        const std::string text(*entry);
        const std::string name = text.substr(0, text.find('='));
        if (!env.contains(name)) {
            environment.push_back(text);
        }
    }
    for (const auto& [name, value] : env) {
        environment.push_back(fmt::format("{}={}", name, value));
    }
    std::vector<char*> envp;
    envp.reserve(environment.size() + 1);
    for (auto& entry : environment) {
        envp.push_back(entry.data());
    }
    envp.push_back(nullptr);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& arg : argv) {
        args.push_back(arg.data());
    }
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attributes, 0);
    const int error =
        ::posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(fds[1]);
    if (error != 0) {
        ::close(fds[0]);
        pid_ = -1;
        throw std::runtime_error("spawn " + argv[0] + ": " + std::strerror(error));
    }
    output_fd_ = fds[0];
}

BackgroundProcess::~BackgroundProcess() {
    stop();
}

std::optional<std::smatch> BackgroundProcess::wait_for_line(const std::regex& pattern,
                                                            std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        while (next_line_ < lines_.size()) {
            last_match_line_ = lines_[next_line_++];
            std::smatch match;
            if (std::regex_search(last_match_line_, match, pattern)) {
                return match;
            }
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || output_fd_ < 0) {
            return std::nullopt;
        }
        pollfd poller{output_fd_, POLLIN, 0};
        if (::poll(&poller, 1, static_cast<int>(left.count())) <= 0) {
            continue;
        }
        std::array<char, 4096> buffer; // not zero-filled: read() writes what is used
        const ssize_t n = ::read(output_fd_, buffer.data(), buffer.size());
        if (n <= 0) {
            ::close(output_fd_);
            output_fd_ = -1;
            continue;
        }
        output_.append(buffer.data(), static_cast<std::size_t>(n));
        pending_.append(buffer.data(), static_cast<std::size_t>(n));
        std::size_t newline = 0;
        while ((newline = pending_.find('\n')) != std::string::npos) {
            lines_.push_back(pending_.substr(0, newline));
            pending_.erase(0, newline + 1);
        }
    }
}

void BackgroundProcess::stop(std::chrono::milliseconds grace) {
    if (pid_ > 0) {
        ::kill(-pid_, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(-pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        // Whatever the server left behind in its group goes too.
        ::kill(-pid_, SIGKILL);
        pid_ = -1;
    }
    if (output_fd_ >= 0) {
        ::close(output_fd_);
        output_fd_ = -1;
    }
}

std::optional<std::string> find_program(const std::string& program) {
    const char* path = std::getenv("PATH");
    if (path == nullptr) {
        return std::nullopt;
    }
    std::string_view rest(path);
    while (!rest.empty()) {
        const auto colon = rest.find(':');
        const std::string dir(rest.substr(0, colon));
        const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        if (colon == std::string_view::npos) {
            break;
        }
        rest.remove_prefix(colon + 1);
    }
    return std::nullopt;
}

} // namespace ci::test
