#include "ci/core/process.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <grp.h>
#include <mutex>
#include <poll.h>
#include <pwd.h>
#include <ranges>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ci/core/cgroup.h>

#include "core/cgroup_kill.h"
#include "core/fd.h"

namespace ci {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// How long output is still read after the supervisor is gone: nothing of the step is left then,
// so only a process that was handed our pipe from outside could hold it open.
constexpr milliseconds drain_limit{1000};
// How often the child is looked at without a pidfd (an old kernel).
constexpr milliseconds group_poll_interval{20};
// How long after the grace period a supervisor that has not finished is killed (it may have been
// stopped with SIGSTOP by the step).
constexpr milliseconds supervisor_backstop{2000};

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
    std::map<std::string, std::string> env = spec.env;
    if (spec.run_as) {
        // The user's own, unless the caller set them.
        env.try_emplace("HOME", spec.run_as->home);
        env.try_emplace("USER", spec.run_as->name);
        env.try_emplace("LOGNAME", spec.run_as->name);
    }
    if (spec.inherit_env) {
        std::erase_if(out, [&](const std::string& entry) {
            return env.contains(entry.substr(0, entry.find('=')));
        });
    }
    for (const auto& [name, value] : env) {
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

std::unexpected<Error> spawn_error(const ProcessSpec& spec, std::string_view detail, int error) {
    const std::string where = spec.cwd.empty() ? std::string() : " in " + spec.cwd;
    return fail(
        ErrorCode::ProcessSpawn,
        fmt::format("spawn '{}'{}: {}{}", spec.argv.front(), where, detail, std::strerror(error)),
        error);
}

// --- The supervisor --------------------------------------------------------------------------
//
// Everything from fork() to execve() runs in a copy of a process that may have many threads, so
// it calls only async-signal-safe functions: no allocation, no locks, no stdio. What it needs is
// prepared before the fork (Launch) and lives in memory the fork copied.

// Why the child could not start, written by the forked processes to the parent.
enum class Stage : int { Fork = 1, Setup, WorkingDirectory, Credentials, Exec, Cgroup };
struct ExecReport {
    int stage = 0;
    int error = 0;
};
// How the child ended, written by the supervisor just before it exits.
struct StatusReport {
    int leader_status = 0;
    int leader_reaped = 0;
    int killed = 0; // something had to be stopped with SIGKILL
};

struct Launch {
    const char* path = nullptr; // the program, already looked up in PATH
    char* const* argv = nullptr;
    char* const* envp = nullptr;
    const char* cwd = nullptr; // nullptr: stay
    int in_fd = -1;            // -1: /dev/null
    int out_fd = -1;
    int err_fd = -1;
    int exec_report = -1;   // close-on-exec: EOF there means the child started
    int status_report = -1; // StatusReport
    int hold_fd = -1;
    int cgroup_fd = -1; // the step's cgroup directory; -1: none
    bool cgroup_kill_file = true;
    bool leave_running = false;
    pid_t parent = 0;
    long long grace_ms = 0;
    bool run_as = false;
    uid_t uid = 0;
    gid_t gid = 0;
    const gid_t* groups = nullptr;
    std::size_t group_count = 0;
};

// Ends a forked child that did not exec (the supervisor, or a leader whose start failed). Not
// _exit: ThreadSanitizer intercepts it and runs its end-of-process checks, which in a forked
// child report every thread of the parent as leaked (and flush the parent's stdio buffers a
// second time). The exit_group system call is what _exit makes, without the interceptor.
[[noreturn]] void exit_forked(int status) {
    ::syscall(SYS_exit_group, status);
    __builtin_unreachable();
}

void write_report(int fd, const void* data, std::size_t size) {
    while (::write(fd, data, size) < 0 && errno == EINTR) {
    }
}

[[noreturn]] void fail_start(const Launch& launch, Stage stage, int error) {
    const ExecReport report{static_cast<int>(stage), error};
    write_report(launch.exec_report, &report, sizeof report);
    exit_forked(127);
}

// Closes every descriptor from 3 up except those in `keep` (sorted, ascending).
void close_others(std::span<const int> keep) {
    unsigned int from = 3;
    for (const int fd : keep) {
        if (fd >= static_cast<int>(from)) {
            if (static_cast<unsigned int>(fd) > from) {
                ::syscall(SYS_close_range, from, static_cast<unsigned int>(fd) - 1, 0U);
            }
            from = static_cast<unsigned int>(fd) + 1;
        }
    }
    ::syscall(SYS_close_range, from, ~0U, 0U);
}

// dup2 that also works when `from` is already `to` (then only close-on-exec is cleared).
bool place(int from, int to) {
    if (from == to) {
        return ::fcntl(to, F_SETFD, 0) == 0;
    }
    return ::dup2(from, to) == to;
}

// The step leader: its own process group, its stdio, its directory and user, then exec.
[[noreturn]] void start_leader(const Launch& launch, pid_t supervisor) {
    // First, before it can start anything: all it starts is born in the cgroup too.
    if (launch.cgroup_fd >= 0 && !detail::cgroup_join(launch.cgroup_fd)) {
        fail_start(launch, Stage::Cgroup, errno);
    }
    ::setpgid(0, 0);
    int in_fd = launch.in_fd;
    if (in_fd < 0) {
        in_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    // Out of the way of 0-2 first, so that placing one cannot overwrite another.
    const int in_high = ::fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
    const int out_high = ::fcntl(launch.out_fd, F_DUPFD_CLOEXEC, 3);
    const int err_high = ::fcntl(launch.err_fd, F_DUPFD_CLOEXEC, 3);
    if (in_fd < 0 || in_high < 0 || out_high < 0 || err_high < 0 || !place(in_high, 0) ||
        !place(out_high, 1) || !place(err_high, 2)) {
        fail_start(launch, Stage::Setup, errno);
    }
    const std::array<int, 1> keep{launch.exec_report};
    close_others(keep);
    if (launch.cwd != nullptr && ::chdir(launch.cwd) != 0) {
        fail_start(launch, Stage::WorkingDirectory, errno);
    }
    if (launch.run_as) {
        if (::setgroups(launch.group_count, launch.groups) != 0 || ::setgid(launch.gid) != 0 ||
            ::setuid(launch.uid) != 0) {
            fail_start(launch, Stage::Credentials, errno);
        }
    }
    // After setuid, which clears it. The leader dies with its supervisor.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != supervisor) {
        exit_forked(127);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(launch.path, launch.argv, launch.envp);
    fail_start(launch, Stage::Exec, errno);
}

// The processes below the supervisor, from /proc: static storage, since the supervisor may not
// allocate (it is a forked copy; nothing else uses these).
constexpr std::size_t max_processes = 65536;
std::array<pid_t, max_processes> scanned_pids{};
std::array<pid_t, max_processes> scanned_parents{};
std::array<bool, max_processes> in_tree{};

bool parse_int(const char*& at, const char* end, long long& value) {
    while (at < end && *at == ' ') {
        ++at;
    }
    if (at == end || *at < '0' || *at > '9') {
        return false;
    }
    value = 0;
    while (at < end && *at >= '0' && *at <= '9') {
        value = value * 10 + (*at - '0');
        ++at;
    }
    return true;
}

// Fills scanned_* with every process and its parent; returns how many.
std::size_t scan_processes() {
    const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
        return 0;
    }
    std::size_t count = 0;
    alignas(8) std::array<char, 8192> entries{};
    for (;;) {
        const ssize_t n = ::getdents64(dir, entries.data(), entries.size());
        if (n <= 0) {
            break;
        }
        for (ssize_t offset = 0; offset < n;) {
            const auto* entry = reinterpret_cast<const dirent64*>(entries.data() + offset);
            offset += entry->d_reclen;
            const char* name = entry->d_name;
            const char* name_end = name + std::strlen(name);
            long long pid = 0;
            if (!parse_int(name, name_end, pid) || name != name_end || count == max_processes) {
                continue;
            }
            std::array<char, 64> path{};
            std::array<char, 512> stat{};
            // "/proc/" + pid + "/stat", without snprintf.
            std::array<char, 24> digits{};
            std::size_t length = 0;
            for (long long rest = pid; rest > 0; rest /= 10) {
                digits[length++] = static_cast<char>('0' + rest % 10);
            }
            std::size_t at = 0;
            for (const char c : std::string_view("/proc/")) {
                path[at++] = c;
            }
            while (length > 0) {
                path[at++] = digits[--length];
            }
            for (const char c : std::string_view("/stat")) {
                path[at++] = c;
            }
            const int fd = ::open(path.data(), O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                continue;
            }
            const ssize_t got = ::read(fd, stat.data(), stat.size());
            ::close(fd);
            if (got <= 0) {
                continue;
            }
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            const char* end = stat.data() + got;
            const char* close = end;
            while (close > stat.data() && *(close - 1) != ')') {
                --close;
            }
            if (close == stat.data() || close + 3 > end) {
                continue;
            }
            const char* cursor = close + 2; // the state
            if (*cursor == 'Z' || *cursor == 'X') {
                continue; // a zombie runs nothing; ours are reaped by the loop
            }
            ++cursor;
            long long parent = 0;
            if (!parse_int(cursor, end, parent)) {
                continue;
            }
            scanned_pids[count] = static_cast<pid_t>(pid);
            scanned_parents[count] = static_cast<pid_t>(parent);
            ++count;
        }
    }
    ::close(dir);
    return count;
}

// Sends `signal` to the leader's process group and to every live descendant of `root`; returns
// whether any process got it.
bool signal_tree(pid_t root, pid_t leader, int signal) {
    bool any = ::kill(-leader, signal) == 0;
    const std::size_t count = scan_processes();
    for (std::size_t i = 0; i < count; ++i) {
        in_tree[i] = false;
    }
    for (bool changed = true; changed;) {
        changed = false;
        for (std::size_t i = 0; i < count; ++i) {
            if (in_tree[i]) {
                continue;
            }
            bool below = scanned_parents[i] == root;
            for (std::size_t j = 0; !below && j < count; ++j) {
                below = in_tree[j] && scanned_pids[j] == scanned_parents[i];
            }
            if (below) {
                in_tree[i] = true;
                changed = true;
            }
        }
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (in_tree[i] && ::kill(scanned_pids[i], signal) == 0) {
            any = true;
        }
    }
    return any;
}

long long monotonic_ms() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<long long>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

// The supervisor: a child subreaper that starts the leader, reaps every process re-parented to
// it, stops them all when the leader ends or a stop is asked (SIGTERM from run_process; SIGHUP
// when run_process's thread died), and exits once it has no child left, that is, when nothing of
// the step runs any more. All signals arrive blocked (run_process blocks them around fork).
[[noreturn]] void supervise(const Launch& launch) {
    struct sigaction defaults {};
    defaults.sa_handler = SIG_DFL;
    for (int signal = 1; signal < NSIG; ++signal) {
        if (signal != SIGKILL && signal != SIGSTOP) {
            ::sigaction(signal, &defaults, nullptr);
        }
    }
    // Nothing of this process but what the supervisor needs: a copy of a master's listening
    // socket or database here would outlive the master.
    std::array<int, 7> keep{launch.in_fd,
                            launch.out_fd,
                            launch.err_fd,
                            launch.exec_report,
                            launch.status_report,
                            launch.hold_fd,
                            launch.cgroup_fd};
    std::ranges::sort(keep);
    close_others(keep);
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGHUP);
    bool parent_gone = ::getppid() != launch.parent;
    if (!launch.leave_running) {
        ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    }
    const pid_t self = ::getpid();
    const pid_t leader = ::fork();
    if (leader == 0) {
        start_leader(launch, self);
    }
    if (leader < 0) {
        fail_start(launch, Stage::Fork, errno);
    }
    ::close(launch.exec_report);
    for (const int fd : {launch.in_fd, launch.out_fd, launch.err_fd}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }

    sigset_t wanted;
    sigemptyset(&wanted);
    for (const int signal : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) {
        sigaddset(&wanted, signal);
    }
    StatusReport status;
    bool stopping = false;
    bool killing = false;
    long long kill_at = 0;
    const auto stop = [&] {
        if (!stopping) {
            stopping = true;
            (void)signal_tree(self, leader, SIGTERM);
            if (launch.cgroup_fd >= 0) {
                (void)detail::cgroup_signal_all(launch.cgroup_fd, SIGTERM);
            }
            kill_at = monotonic_ms() + launch.grace_ms;
        }
    };
    for (;;) {
        int wait_status = 0;
        pid_t reaped = 0;
        while ((reaped = ::waitpid(-1, &wait_status, WNOHANG)) > 0) {
            if (reaped == leader) {
                status.leader_status = wait_status;
                status.leader_reaped = 1;
            }
        }
        if (reaped < 0 && errno == ECHILD) {
            break; // nothing of the step is left
        }
        if (parent_gone && !killing) {
            killing = true;
            stopping = true;
        }
        if (status.leader_reaped != 0) {
            if (launch.leave_running && !stopping) {
                break; // what the leader started is left running, as asked
            }
            stop();
        }
        if (stopping && !killing && monotonic_ms() >= kill_at) {
            killing = true;
        }
        if (killing && launch.cgroup_fd >= 0 && detail::cgroup_populated(launch.cgroup_fd) != 0) {
            // All at once, however fast they fork; then the tree for anything outside it.
            detail::cgroup_kill_all(launch.cgroup_fd, launch.cgroup_kill_file);
            status.killed = 1;
        }
        if (killing && signal_tree(self, leader, SIGKILL)) {
            status.killed = 1;
        }
        timespec wait{};
        const timespec* timeout = nullptr;
        if (killing) {
            wait.tv_nsec = 20'000'000; // new orphans of the killed come to us; kill them too
            timeout = &wait;
        } else if (stopping) {
            const long long left = std::max(0LL, kill_at - monotonic_ms());
            wait.tv_sec = static_cast<time_t>(left / 1000);
            wait.tv_nsec = static_cast<long>(left % 1000) * 1'000'000;
            timeout = &wait;
        }
        siginfo_t info{};
        const int got = ::sigtimedwait(&wanted, &info, timeout);
        if (got == SIGTERM || got == SIGINT) {
            stop();
        } else if (got == SIGHUP && ::getppid() != launch.parent) {
            parent_gone = true;
        }
    }
    write_report(launch.status_report, &status, sizeof status);
    exit_forked(0);
}

// The supervisors run_process started and has not reaped yet: the only children of this process
// that the orphan reaper (become_subreaper) leaves alone. Forks happen under the mutex, so a new
// supervisor is listed before the reaper can see it.
std::mutex& children_mutex() {
    static std::mutex mutex;
    return mutex;
}
std::set<pid_t>& supervisors() {
    static std::set<pid_t> pids;
    return pids;
}

// argv[0] looked up in this process's PATH, as execvp would; ENOENT or EACCES when it is not
// there.
Result<std::string> find_program(const ProcessSpec& spec) {
    const std::string& name = spec.argv.front();
    if (name.find('/') != std::string::npos) {
        return name;
    }
    const char* path = std::getenv("PATH");
    const std::string_view directories = path != nullptr ? path : "/usr/local/bin:/bin:/usr/bin";
    int error = ENOENT;
    for (const auto part : std::views::split(directories, ':')) {
        const std::string_view directory(part.begin(), part.end());
        std::string candidate =
            fmt::format("{}/{}", directory.empty() ? std::string_view(".") : directory, name);
        struct stat info {};
        if (::stat(candidate.c_str(), &info) != 0 || S_ISDIR(info.st_mode)) {
            continue;
        }
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        error = EACCES;
    }
    return spawn_error(spec, "", error);
}

// Everything run_process tracks about one running child.
class Child {
public:
    Child(const ProcessSpec& spec,
          pid_t pid,
          Fd out,
          Fd err,
          Fd in,
          Fd status,
          StepCgroup cgroup,
          Clock::time_point start)
        : spec_(spec), pid_(pid), out_(std::move(out)), err_(std::move(err)), in_(std::move(in)),
          status_(std::move(status)), cgroup_(std::move(cgroup)), start_(start) {
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
    // came.
    void wait_for_events() {
        std::array<pollfd, 5> fds{};
        std::size_t count = 0;
        const auto add = [&](const Fd& fd, short events) {
            if (fd.valid()) {
                fds[count++] = pollfd{fd.get(), events, 0};
            }
        };
        add(out_, POLLIN);
        add(err_, POLLIN);
        if (in_.valid() && stdin_offset_ < stdin_size()) {
            add(in_, POLLOUT);
        }
        if (!reaped_) {
            add(pidfd_, POLLIN);
        }
        add(wake_, POLLIN);
        ::poll(fds.data(), count, poll_timeout());
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

    // Asks the supervisor to stop the step (SIGTERM to all of it, SIGKILL after the grace). The
    // supervisor itself is killed only if it has not finished well after that: then the leader
    // dies with it, and become_subreaper's reaper takes what is left.
    void begin_stop(ProcessResult::Termination why) {
        stopping_ = true;
        result_.termination = why;
        result_.stopped_after = std::chrono::duration_cast<milliseconds>(Clock::now() - start_);
        ::kill(pid_, SIGTERM);
        kill_at_ = Clock::now() + spec_.kill_grace + supervisor_backstop;
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
            ::kill(pid_, SIGKILL);
            killed_ = true;
            result_.killed_after_grace = true;
        }
    }

    // True once the supervisor has exited, which it does when nothing of the step is left.
    bool child_exited() const {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
            return errno == ECHILD;
        }
        return info.si_pid == pid_;
    }

    // Reaps the supervisor and takes how the step ended from its report.
    void end_group_and_reap() {
        exited_ = true;
        int status = 0;
        {
            const std::lock_guard lock(children_mutex());
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            supervisors().erase(pid_);
        }
        StatusReport report;
        ssize_t got = 0;
        while ((got = ::read(status_.get(), &report, sizeof report)) < 0 && errno == EINTR) {
        }
        if (got == static_cast<ssize_t>(sizeof report) && report.leader_reaped != 0) {
            status = report.leader_status;
            if (report.killed != 0 && stopping_) {
                result_.killed_after_grace = true;
            }
        }
        if (cgroup_.fd() >= 0) {
            // The supervisor is done with the tree; what is still in the cgroup escaped it.
            // Killed now, so that nothing of the step holds the output pipes or runs on.
            result_.cgroup = cgroup_.path();
            (void)cgroup_.destroy();
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
    Fd status_; // the supervisor's StatusReport
    StepCgroup cgroup_;
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
        text = fmt::format("timed out after {}", seconds_text(stopped_after));
        break;
    case Termination::Inactive:
        text = fmt::format("no output for {}: stopped after {}",
                           seconds_text(inactivity),
                           seconds_text(stopped_after));
        break;
    case Termination::Cancelled:
        text = fmt::format("stopped on request after {}", seconds_text(stopped_after));
        break;
    }
    if (killed_after_grace) {
        text += "; it ignored SIGTERM and was killed with SIGKILL";
    } else if (signal != 0) {
        text += fmt::format("; then ended by {}", signal_name(signal));
    } else {
        text += fmt::format("; it then exited with status {}", exit_code);
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

    auto program = find_program(spec);
    if (!program) {
        return std::unexpected(program.error());
    }
    StepCgroup cgroup;
    if (spec.cgroups) {
        auto created = spec.cgroups->create_step();
        if (!created) {
            return fail(ErrorCode::ProcessSpawn,
                        fmt::format("spawn '{}': {}", spec.argv.front(), created.error().message),
                        created.error().native);
        }
        cgroup = std::move(*created);
    }
    std::array<int, 2> exec_pipe{-1, -1};
    std::array<int, 2> status_pipe{-1, -1};
    if (::pipe2(exec_pipe.data(), O_CLOEXEC) != 0) {
        return spawn_error(spec, "pipe: ", errno);
    }
    Fd exec_read(exec_pipe[0]);
    Fd exec_write(exec_pipe[1]);
    if (::pipe2(status_pipe.data(), O_CLOEXEC) != 0) {
        return spawn_error(spec, "pipe: ", errno);
    }
    Fd status_read(status_pipe[0]);
    Fd status_write(status_pipe[1]);

    std::vector<std::string> arguments = spec.argv;
    std::vector<std::string> environment = child_environment(spec);
    auto argv = pointers(arguments);
    auto envp = pointers(environment);
    Launch launch;
    launch.path = program->c_str();
    launch.argv = argv.data();
    launch.envp = envp.data();
    launch.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
    launch.in_fd = in_child.valid() ? in_child.get() : -1;
    launch.out_fd = out_write.get();
    launch.err_fd = spec.merge_stderr ? out_write.get() : err_write.get();
    launch.exec_report = exec_write.get();
    launch.status_report = status_write.get();
    launch.hold_fd = spec.hold_fd;
    launch.leave_running = spec.leave_running;
    launch.cgroup_fd = cgroup.fd();
    launch.cgroup_kill_file = spec.cgroups && spec.cgroups->kill_file();
    launch.parent = ::getpid();
    launch.grace_ms = spec.kill_grace.count();
    if (spec.run_as) {
        launch.run_as = true;
        launch.uid = spec.run_as->uid;
        launch.gid = spec.run_as->gid;
        launch.groups = spec.run_as->groups.data();
        launch.group_count = spec.run_as->groups.size();
    }

    const auto start = Clock::now();
    pid_t pid = -1;
    int fork_error = 0;
    {
        // Every signal blocked across the fork: the supervisor starts with them blocked and
        // takes the ones it wants with sigtimedwait; this thread gets its mask back at once.
        sigset_t all;
        sigset_t previous;
        sigfillset(&all);
        ::pthread_sigmask(SIG_SETMASK, &all, &previous);
        const std::lock_guard lock(children_mutex());
        pid = ::fork();
        if (pid == 0) {
            supervise(launch);
        }
        fork_error = errno;
        if (pid > 0) {
            supervisors().insert(pid);
        }
        ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    }
    if (pid < 0) {
        return spawn_error(spec, "fork: ", fork_error);
    }
    out_write.reset();
    err_write.reset();
    in_child.reset();
    exec_write.reset();
    status_write.reset();
    if (in_parent.valid() && spec.stdin_data->empty()) {
        in_parent.reset();
    }
    // End of file (the exec closed the last writer) means the child started.
    ExecReport report;
    ssize_t got = 0;
    while ((got = ::read(exec_read.get(), &report, sizeof report)) < 0 && errno == EINTR) {
    }
    if (got == static_cast<ssize_t>(sizeof report)) {
        {
            const std::lock_guard lock(children_mutex());
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
            supervisors().erase(pid);
        }
        switch (static_cast<Stage>(report.stage)) {
        case Stage::WorkingDirectory:
            return spawn_error(spec, "working directory: ", report.error);
        case Stage::Credentials:
            return spawn_error(
                spec, fmt::format("run as user '{}': ", spec.run_as->name), report.error);
        case Stage::Fork:
            return spawn_error(spec, "fork: ", report.error);
        case Stage::Cgroup:
            return spawn_error(spec, fmt::format("join cgroup {}: ", cgroup.path()), report.error);
        case Stage::Setup:
        case Stage::Exec:
            break;
        }
        return spawn_error(spec, "", report.error);
    }

    Child child(spec,
                pid,
                std::move(out_read),
                std::move(err_read),
                std::move(in_parent),
                std::move(status_read),
                std::move(cgroup),
                start);
    return child.run();
}

Result<RunAs> lookup_user(const std::string& name) {
    std::array<char, 16384> buffer{};
    passwd entry{};
    passwd* found = nullptr;
    const int error = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
    if (found == nullptr) {
        return fail(ErrorCode::NotFound,
                    fmt::format("step_user '{}': {}",
                                name,
                                error != 0 ? std::strerror(error) : "no such user"),
                    error);
    }
    RunAs user;
    user.name = name;
    user.uid = entry.pw_uid;
    user.gid = entry.pw_gid;
    user.home = entry.pw_dir != nullptr ? entry.pw_dir : "/";
    int count = 32;
    user.groups.resize(static_cast<std::size_t>(count));
    while (::getgrouplist(name.c_str(), user.gid, user.groups.data(), &count) < 0) {
        user.groups.resize(static_cast<std::size_t>(count));
    }
    user.groups.resize(static_cast<std::size_t>(count));
    return user;
}

namespace {

// Kills and reaps the children of this process that are not supervisors of run_process.
void reap_orphans() {
    const pid_t self = ::getpid();
    const std::lock_guard lock(children_mutex());
    for (;;) {
        siginfo_t info{};
        // Look, without reaping, at any child that has exited; reap it unless it is ours.
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0) {
            break;
        }
        if (supervisors().contains(info.si_pid)) {
            break; // its run_process reaps it; a later round sees the others
        }
        ::waitpid(info.si_pid, nullptr, WNOHANG);
    }
    const std::size_t count = scan_processes();
    for (std::size_t i = 0; i < count; ++i) {
        if (scanned_parents[i] == self && !supervisors().contains(scanned_pids[i])) {
            ::kill(scanned_pids[i], SIGKILL);
        }
    }
}

} // namespace

Status become_subreaper() {
    static std::once_flag once;
    static int error = 0;
    std::call_once(once, [] {
        if (::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
            error = errno;
            return;
        }
        std::thread([] {
            for (;;) {
                reap_orphans();
                std::this_thread::sleep_for(std::chrono::seconds(1));
            }
        }).detach();
    });
    if (error != 0) {
        return fail(ErrorCode::Unsupported,
                    fmt::format("PR_SET_CHILD_SUBREAPER: {}", std::strerror(error)),
                    error);
    }
    return {};
}

Result<std::chrono::milliseconds>
parse_seconds(std::string_view option, std::string_view text, double max_seconds) {
    const std::string copy(text);
    const auto invalid = [&](std::string_view why) {
        return fail(ErrorCode::InvalidArgument, fmt::format("{}: {} {}", option, copy, why));
    };
    // Plain decimal numbers only: strtod would also take "inf", "nan", hexadecimal and spaces.
    const bool decimal = !copy.empty() && std::ranges::all_of(copy, [](char c) {
        return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
    });
    char* end = nullptr;
    errno = 0;
    const double seconds = decimal ? std::strtod(copy.c_str(), &end) : 0;
    const bool out_of_range = errno == ERANGE;
    if (!decimal || end != copy.c_str() + copy.size()) {
        return invalid("is not a number of seconds");
    }
    if (seconds < 0) {
        return invalid("is negative");
    }
    if (out_of_range && seconds == 0) {
        return invalid("is below 1 millisecond, the resolution; 0 means none");
    }
    if (out_of_range || !std::isfinite(seconds) || seconds > max_seconds) {
        return invalid(fmt::format(
            "is more than {:.0f} seconds ({:.0f} days)", max_seconds, max_seconds / 86400));
    }
    if (seconds > 0 && seconds < 0.001) {
        return invalid("is below 1 millisecond, the resolution; 0 means none");
    }
    return std::chrono::milliseconds(std::llround(seconds * 1000));
}

} // namespace ci
