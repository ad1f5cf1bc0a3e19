#include "ci/core/process.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

namespace ci {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long output is still read after the child and its group are gone: only a process that
// left the group (setsid) and kept our pipe can hold it open that long, and it is not waited for.
constexpr milliseconds drain_limit{1000};
// How often the group is looked at while waiting for leftovers to exit.
constexpr milliseconds group_poll_interval{20};

// Closes a descriptor when it goes out of scope.
class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) noexcept : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const noexcept { return fd_; }
    [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }

private:
    int fd_ = -1;
};

std::string signal_name(int signal) {
    const char* abbreviation = ::sigabbrev_np(signal);
    return abbreviation != nullptr ? fmt::format("SIG{}", abbreviation)
                                   : fmt::format("signal {}", signal);
}

std::string seconds_text(milliseconds duration) {
    if (duration.count() % 1000 == 0) {
        return fmt::format("{}s", duration.count() / 1000);
    }
    return fmt::format("{:.1f}s", static_cast<double>(duration.count()) / 1000.0);
}

// Processes of process group `group` that are not zombies, read from /proc. A zombie holds no
// descriptors and runs nothing; our own unreaped child is one after it exits.
bool group_has_live_members(pid_t group) {
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        // Without /proc, assume the worst; the caller's grace period bounds the wait.
        return true;
    }
    bool found = false;
    while (const dirent* entry = ::readdir(proc)) {
        const char* name = entry->d_name;
        if (name[0] < '0' || name[0] > '9') {
            continue;
        }
        std::ifstream stat(std::string("/proc/") + name + "/stat");
        std::string line;
        if (!std::getline(stat, line)) {
            continue;
        }
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        const auto close = line.rfind(')');
        if (close == std::string::npos || close + 2 >= line.size()) {
            continue;
        }
        const char state = line[close + 2];
        int parent = 0;
        int pgrp = 0;
        if (std::sscanf(line.c_str() + close + 3, "%d %d", &parent, &pgrp) != 2) {
            continue;
        }
        if (pgrp == group && state != 'Z' && state != 'X') {
            found = true;
            break;
        }
    }
    ::closedir(proc);
    return found;
}

// The environment block for the child.
std::vector<std::string> child_environment(const ProcessSpec& spec) {
    std::vector<std::string> out;
    if (spec.inherit_env) {
        for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
            const std::string_view text(*entry);
            const std::string name(text.substr(0, text.find('=')));
            if (spec.env.contains(name) ||
                std::ranges::find(spec.unset_env, name) != spec.unset_env.end()) {
                continue;
            }
            out.emplace_back(text);
        }
    }
    for (const auto& [name, value] : spec.env) {
        out.push_back(fmt::format("{}={}", name, value));
    }
    return out;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (auto& text : strings) {
        out.push_back(text.data());
    }
    out.push_back(nullptr);
    return out;
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
    posix_spawnattr_t attributes{};
    posix_spawn_file_actions_t actions{};
    SpawnSetup() {
        posix_spawnattr_init(&attributes);
        posix_spawn_file_actions_init(&actions);
    }
    ~SpawnSetup() {
        posix_spawnattr_destroy(&attributes);
        posix_spawn_file_actions_destroy(&actions);
    }
    SpawnSetup(const SpawnSetup&) = delete;
    SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::unexpected<Error> spawn_error(const ProcessSpec& spec, std::string_view detail, int error) {
    const std::string where = spec.cwd.empty() ? std::string() : " in " + spec.cwd;
    return fail(
        ErrorCode::ProcessSpawn,
        fmt::format("spawn '{}'{}: {}{}", spec.argv.front(), where, detail, std::strerror(error)),
        error);
}

// Everything run_process tracks about one running child.
class Child {
public:
    Child(const ProcessSpec& spec, pid_t pid, Fd out, Fd err, Fd in, Clock::time_point start)
        : spec_(spec), pid_(pid), out_(std::move(out)), err_(std::move(err)), in_(std::move(in)),
          start_(start) {
        pidfd_ = Fd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
        wake_ = Fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        if (spec_.timeout.count() > 0) {
            deadline_ = start_ + spec_.timeout;
        }
        last_output_ = start_;
        if (spec_.on_tick && spec_.tick_interval.count() > 0) {
            next_tick_ = start_ + spec_.tick_interval;
        }
    }

    ProcessResult run() {
        // A stop request from another thread wakes the poll below through the eventfd.
        const std::stop_callback on_stop(spec_.stop, [this] {
            const std::uint64_t one = 1;
            if (wake_.valid()) {
                (void)::write(wake_.get(), &one, sizeof one);
            }
        });
        if (spec_.stop.stop_requested()) {
            begin_stop(ProcessResult::Termination::Cancelled);
        }
        while (!finished()) {
            wait_for_events();
            handle_time();
            if (next_tick_ && !reaped_ && Clock::now() >= *next_tick_) {
                spec_.on_tick();
                next_tick_ = Clock::now() + spec_.tick_interval;
            }
            if (!reaped_ && child_exited()) {
                end_group_and_reap();
            }
        }
        return result_;
    }

private:
    bool finished() {
        if (!reaped_) {
            return false;
        }
        if (!out_.valid() && !err_.valid()) {
            return true;
        }
        // The group is gone; only a process that left it can still hold a pipe.
        return Clock::now() >= drain_until_;
    }

    // Waits for output, input space, the child's exit or a stop request, and handles what
    // came. `output_only`: only keep the pipes flowing, for a short while (while leftovers of
    // the group are being stopped).
    void wait_for_events(bool output_only = false) {
        std::array<pollfd, 5> fds{};
        std::size_t count = 0;
        const auto add = [&](const Fd& fd, short events) {
            if (fd.valid()) {
                fds[count++] = pollfd{fd.get(), events, 0};
            }
        };
        add(out_, POLLIN);
        add(err_, POLLIN);
        if (!output_only) {
            if (in_.valid() && stdin_offset_ < stdin_size()) {
                add(in_, POLLOUT);
            }
            if (!reaped_) {
                add(pidfd_, POLLIN);
            }
            add(wake_, POLLIN);
        }
        ::poll(fds.data(),
               count,
               output_only ? static_cast<int>(group_poll_interval.count()) : poll_timeout());
        for (std::size_t i = 0; i < count; ++i) {
            if (fds[i].revents == 0) {
                continue;
            }
            if (fds[i].fd == out_.get()) {
                read_output(out_, OutputStream::Stdout);
            } else if (fds[i].fd == err_.get()) {
                read_output(err_, OutputStream::Stderr);
            } else if (fds[i].fd == in_.get()) {
                write_input();
            } else if (fds[i].fd == wake_.get()) {
                std::uint64_t value = 0;
                (void)::read(wake_.get(), &value, sizeof value);
            }
        }
        if (spec_.stop.stop_requested() && !stopping_ && !exited_) {
            begin_stop(ProcessResult::Termination::Cancelled);
        }
    }

    int poll_timeout() const {
        const auto now = Clock::now();
        milliseconds wait{-1};
        const auto until = [&](Clock::time_point when) {
            const auto left =
                std::max(milliseconds(0), std::chrono::ceil<milliseconds>(when - now));
            wait = wait.count() < 0 ? left : std::min(wait, left);
        };
        if (deadline_ && !stopping_) {
            until(*deadline_);
        }
        if (spec_.inactivity_timeout.count() > 0 && !stopping_ && !exited_) {
            until(last_output_ + spec_.inactivity_timeout);
        }
        if (kill_at_ && !killed_) {
            until(*kill_at_);
        }
        if (next_tick_ && !reaped_) {
            until(*next_tick_);
        }
        if (reaped_) {
            until(drain_until_);
        }
        // Without a pidfd (an old kernel) the child's exit is noticed by looking.
        if (!pidfd_.valid() && !reaped_) {
            until(now + group_poll_interval);
        }
        return static_cast<int>(wait.count());
    }

    void read_output(Fd& fd, OutputStream stream) {
        std::array<char, 65536> buffer{};
        const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
        if (n > 0) {
            last_output_ = Clock::now();
            if (spec_.on_output) {
                spec_.on_output(stream,
                                std::string_view(buffer.data(), static_cast<std::size_t>(n)));
            }
            return;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
            return;
        }
        fd.reset(); // end of file, or an error that will not go away
    }

    std::size_t stdin_size() const { return spec_.stdin_data ? spec_.stdin_data->size() : 0; }

    void write_input() {
        const std::string& data = *spec_.stdin_data;
        // A socket, so that MSG_NOSIGNAL keeps a child that stopped reading from raising SIGPIPE
        // in this process; a library must not change the host's signal dispositions.
        const ssize_t n = ::send(in_.get(),
                                 data.data() + stdin_offset_,
                                 data.size() - stdin_offset_,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            stdin_offset_ += static_cast<std::size_t>(n);
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            stdin_offset_ = data.size(); // the child closed its input: nothing more to give
        }
        if (stdin_offset_ >= data.size()) {
            in_.reset();
        }
    }

    void begin_stop(ProcessResult::Termination why) {
        stopping_ = true;
        result_.termination = why;
        ::kill(-pid_, SIGTERM);
        kill_at_ = Clock::now() + spec_.kill_grace;
    }

    void handle_time() {
        const auto now = Clock::now();
        if (!stopping_ && !exited_ && deadline_ && now >= *deadline_) {
            begin_stop(ProcessResult::Termination::TimedOut);
        }
        if (!stopping_ && !exited_ && spec_.inactivity_timeout.count() > 0 &&
            now >= last_output_ + spec_.inactivity_timeout) {
            result_.inactivity = spec_.inactivity_timeout;
            begin_stop(ProcessResult::Termination::Inactive);
        }
        if (kill_at_ && !killed_ && now >= *kill_at_) {
            ::kill(-pid_, SIGKILL);
            killed_ = true;
            result_.killed_after_grace = true;
        }
    }

    // True once the child has exited; it stays a zombie (not reaped) so that its pid, which is
    // also the group's id, cannot be reused while the group is being stopped.
    bool child_exited() const {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            return errno == ECHILD;
        }
        return info.si_pid == pid_;
    }

    // Stops what the child left running in its group (SIGTERM, then SIGKILL after the grace),
    // then reaps the child.
    void end_group_and_reap() {
        exited_ = true;
        if (group_has_live_members(pid_)) {
            if (!kill_at_) {
                ::kill(-pid_, SIGTERM);
                kill_at_ = Clock::now() + spec_.kill_grace;
            }
            const auto leftovers_gone = [&] { return !group_has_live_members(pid_); };
            while (!leftovers_gone()) {
                handle_time();
                if (killed_ && Clock::now() >= *kill_at_ + drain_limit) {
                    break; // SIGKILL cannot be refused; whatever remains is on its way out
                }
                // Keep the pipes flowing meanwhile, so that a chatty leftover cannot block.
                wait_for_events(/*output_only=*/true);
            }
        }
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        reaped_ = true;
        result_.duration = std::chrono::duration_cast<milliseconds>(Clock::now() - start_);
        if (WIFEXITED(status)) {
            result_.exit_code = WEXITSTATUS(status);
            if (!stopping_) {
                result_.termination = ProcessResult::Termination::Exited;
            }
        } else if (WIFSIGNALED(status)) {
            result_.signal = WTERMSIG(status);
            if (!stopping_) {
                result_.termination = ProcessResult::Termination::Signaled;
            }
        }
        drain_until_ = Clock::now() + drain_limit;
        in_.reset();
    }

    const ProcessSpec& spec_;
    pid_t pid_;
    Fd out_;
    Fd err_;
    Fd in_;
    Fd pidfd_;
    Fd wake_;
    Clock::time_point start_;
    std::optional<Clock::time_point> deadline_;
    Clock::time_point last_output_;              // the start, or the last output read
    std::optional<Clock::time_point> next_tick_; // when on_tick is due
    std::optional<Clock::time_point> kill_at_;
    Clock::time_point drain_until_{};
    std::size_t stdin_offset_ = 0;
    bool stopping_ = false;
    bool killed_ = false;
    bool exited_ = false; // the child has exited; its leftovers may still be stopping
    bool reaped_ = false;
    ProcessResult result_;
};

} // namespace

std::string ProcessResult::describe() const {
    std::string text;
    switch (termination) {
    case Termination::Exited:
        return fmt::format("exited with status {}", exit_code);
    case Termination::Signaled:
        return fmt::format("killed by signal {} ({})", signal, signal_name(signal));
    case Termination::TimedOut:
        text = fmt::format("timed out after {}", seconds_text(duration));
        break;
    case Termination::Inactive:
        text = fmt::format(
            "no output for {}: stopped after {}", seconds_text(inactivity), seconds_text(duration));
        break;
    case Termination::Cancelled:
        text = fmt::format("stopped on request after {}", seconds_text(duration));
        break;
    }
    if (killed_after_grace) {
        text += "; it ignored SIGTERM and was killed with SIGKILL";
    } else if (signal != 0) {
        text += fmt::format("; ended by {}", signal_name(signal));
    } else {
        text += fmt::format("; exited with status {}", exit_code);
    }
    return text;
}

Result<ProcessResult> run_process(const ProcessSpec& spec) {
    if (spec.argv.empty() || spec.argv.front().empty()) {
        return fail(ErrorCode::InvalidArgument, "spawn: the command is empty");
    }
    if (!spec.cwd.empty()) {
        struct stat info {};
        if (::stat(spec.cwd.c_str(), &info) != 0) {
            return spawn_error(spec, "working directory: ", errno);
        }
        if (!S_ISDIR(info.st_mode)) {
            return spawn_error(spec, "working directory: ", ENOTDIR);
        }
    }
    // Every descriptor is created close-on-exec, so that concurrent spawns from other threads
    // cannot leak our pipes into their children; the child gets only what is dup2'ed below.
    std::array<int, 2> out{-1, -1};
    std::array<int, 2> err{-1, -1};
    std::array<int, 2> in{-1, -1};
    if (::pipe2(out.data(), O_CLOEXEC) != 0) {
        return spawn_error(spec, "pipe: ", errno);
    }
    Fd out_read(out[0]);
    Fd out_write(out[1]);
    Fd err_read;
    Fd err_write;
    if (!spec.merge_stderr) {
        if (::pipe2(err.data(), O_CLOEXEC) != 0) {
            return spawn_error(spec, "pipe: ", errno);
        }
        err_read = Fd(err[0]);
        err_write = Fd(err[1]);
    }
    Fd in_parent;
    Fd in_child;
    if (spec.stdin_data) {
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in.data()) != 0) {
            return spawn_error(spec, "socketpair: ", errno);
        }
        in_parent = Fd(in[0]);
        in_child = Fd(in[1]);
        ::shutdown(in_child.get(), SHUT_WR);
    }

    SpawnSetup setup;
    posix_spawnattr_setflags(
        &setup.attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&setup.attributes, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&setup.attributes, &none);
    // The child starts with default dispositions whatever the host ignores (SIGPIPE, SIGINT).
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int signal = 1; signal < NSIG; ++signal) {
        if (signal != SIGKILL && signal != SIGSTOP) {
            sigaddset(&defaults, signal);
        }
    }
    posix_spawnattr_setsigdefault(&setup.attributes, &defaults);

    auto* actions = &setup.actions;
    if (in_child.valid()) {
        posix_spawn_file_actions_adddup2(actions, in_child.get(), STDIN_FILENO);
    } else {
        posix_spawn_file_actions_addopen(actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_adddup2(actions, out_write.get(), STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(
        actions, spec.merge_stderr ? out_write.get() : err_write.get(), STDERR_FILENO);
    // Descriptors the host inherited without close-on-exec stay out of the child too.
    posix_spawn_file_actions_addclosefrom_np(actions, STDERR_FILENO + 1);
    if (!spec.cwd.empty()) {
        posix_spawn_file_actions_addchdir_np(actions, spec.cwd.c_str());
    }

    std::vector<std::string> arguments = spec.argv;
    std::vector<std::string> environment = child_environment(spec);
    auto argv = pointers(arguments);
    auto envp = pointers(environment);
    const auto start = Clock::now();
    pid_t pid = -1;
    // posix_spawnp looks argv[0] up in the PATH of this process, as execvp does.
    const int error =
        ::posix_spawnp(&pid, argv.front(), actions, &setup.attributes, argv.data(), envp.data());
    if (error != 0) {
        return spawn_error(spec, "", error);
    }
    out_write.reset();
    err_write.reset();
    in_child.reset();
    if (in_parent.valid() && spec.stdin_data->empty()) {
        in_parent.reset();
    }

    Child child(spec, pid, std::move(out_read), std::move(err_read), std::move(in_parent), start);
    return child.run();
}

} // namespace ci
