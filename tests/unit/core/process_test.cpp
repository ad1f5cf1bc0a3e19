// The process runner, with real children: /bin/sh scripts that exit, print, read, ignore
// SIGTERM and fork grandchildren.

#include <atomic>
#include <csignal>
#include <dirent.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/prctl.h>

#include <ci/core/hardening.h>
#include <ci/core/process.h>

#include "support/process_state.h"
#include "support/require_ok.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
using Termination = ci::ProcessResult::Termination;

struct Captured {
    std::string out;
    std::string err;
    ci::ProcessResult result;
};

// Runs `script` with /bin/sh -c and captures both streams.
Captured run_shell(const std::string& script, ci::ProcessSpec spec = {}) {
    Captured captured;
    spec.argv = {"/bin/sh", "-c", script};
    spec.on_output = [&](ci::OutputStream stream, std::string_view chunk) {
        (stream == ci::OutputStream::Stdout ? captured.out : captured.err).append(chunk);
    };
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    captured.result = *result;
    return captured;
}

using ci::test::process_running;

pid_t read_pid(const std::filesystem::path& file) {
    std::ifstream in(file);
    pid_t pid = 0;
    in >> pid;
    return pid;
}

int open_descriptors() {
    int count = 0;
    DIR* dir = ::opendir("/proc/self/fd");
    while (dirent* entry = ::readdir(dir)) {
        count += entry->d_name[0] != '.' ? 1 : 0;
    }
    ::closedir(dir);
    return count;
}

} // namespace

TEST_CASE("process: exit status, signals and both output streams") {
    auto ok = run_shell("echo out; echo err >&2; exit 0");
    CHECK(ok.result.success());
    CHECK(ok.out == "out\n");
    CHECK(ok.err == "err\n");
    CHECK(ok.result.describe() == "exited with status 0");

    auto failed = run_shell("exit 3");
    CHECK(failed.result.termination == Termination::Exited);
    CHECK(failed.result.exit_code == 3);
    CHECK_FALSE(failed.result.success());

    auto killed = run_shell("kill -SEGV $$");
    CHECK(killed.result.termination == Termination::Signaled);
    CHECK(killed.result.signal == SIGSEGV);
    CHECK(killed.result.describe() == "killed by signal 11 (SIGSEGV)");
}

TEST_CASE("process: merged output keeps the order it was written in") {
    ci::ProcessSpec spec;
    spec.merge_stderr = true;
    auto merged = run_shell("echo one; echo two >&2; echo three", spec);
    CHECK(merged.out == "one\ntwo\nthree\n");
    CHECK(merged.err.empty());
}

TEST_CASE("process: large output and large input pass whole") {
    auto big = run_shell("head -c 5000000 /dev/zero | tr '\\0' x");
    CHECK(big.out.size() == 5000000);
    CHECK(big.out.find_first_not_of('x') == std::string::npos);

    ci::test::TempDir dir;
    ci::ProcessSpec spec;
    spec.stdin_data = std::string(3000000, 'y') + "end";
    const std::string copy = (dir / "stdin").string();
    auto echoed = run_shell("cat > " + copy + "; wc -c < " + copy + "; tail -c 3 " + copy, spec);
    CHECK(echoed.out == "3000003\nend");

    ci::ProcessSpec closed;
    closed.stdin_data = std::string(4000000, 'z');
    auto ignored = run_shell("exit 0", closed); // never reads: no SIGPIPE, no hang
    CHECK(ignored.result.success());

    auto no_input = run_shell("cat");
    CHECK(no_input.out.empty()); // standard input is /dev/null
}

TEST_CASE("process: environment and working directory") {
    ::setenv("LIBCI_PROCESS_TEST_INHERITED", "inherited", 1);
    ::setenv("LIBCI_PROCESS_TEST_REMOVED", "removed", 1);
    ci::ProcessSpec spec;
    spec.env = {{"LIBCI_STEP", "value with spaces"}};
    spec.unset_env = {"LIBCI_PROCESS_TEST_REMOVED"};
    auto env = run_shell(
        "echo \"$LIBCI_STEP|$LIBCI_PROCESS_TEST_INHERITED|${LIBCI_PROCESS_TEST_REMOVED-unset}\"",
        spec);
    CHECK(env.out == "value with spaces|inherited|unset\n");

    ci::ProcessSpec clean;
    clean.inherit_env = false;
    clean.env = {{"ONLY", "1"}};
    auto empty = run_shell("env | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_='", clean);
    CHECK(empty.out == "ONLY=1\n");

    ci::test::TempDir dir;
    ci::ProcessSpec in_dir;
    in_dir.cwd = dir.path().string();
    auto pwd = run_shell("pwd -P", in_dir);
    CHECK(pwd.out == std::filesystem::canonical(dir.path()).string() + "\n");
    ::unsetenv("LIBCI_PROCESS_TEST_INHERITED");
    ::unsetenv("LIBCI_PROCESS_TEST_REMOVED");
}

TEST_CASE("process: what cannot start is an error naming the command") {
    ci::ProcessSpec missing;
    missing.argv = {"libci-no-such-program", "--flag"};
    auto result = ci::run_process(missing);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().code == ci::ErrorCode::ProcessSpawn);
    CHECK(result.error().message == "spawn 'libci-no-such-program': No such file or directory");
    CHECK(result.error().native == ENOENT);

    ci::ProcessSpec bad_dir;
    bad_dir.argv = {"/bin/true"};
    bad_dir.cwd = "/nonexistent/libci";
    result = ci::run_process(bad_dir);
    REQUIRE_FALSE(result.has_value());
    CHECK(result.error().message ==
          "spawn '/bin/true' in /nonexistent/libci: working directory: No such file or directory");

    CHECK(ci::run_process(ci::ProcessSpec{}).error().code == ci::ErrorCode::InvalidArgument);
}

TEST_CASE("process: leave_running leaves what the child started in the background alone") {
    ci::test::TempDir dir;
    const auto pid_file = dir / "pid";
    const auto started = [&](bool leave) {
        ci::ProcessSpec spec;
        spec.leave_running = leave;
        // What ci-deploy's start script does: a service in a session of its own, its output
        // elsewhere, and the script ends.
        auto ran = run_shell(
            "setsid sleep 30 </dev/null >/dev/null 2>&1 & echo $! >" + pid_file.string(), spec);
        CHECK(ran.result.success());
        return static_cast<pid_t>(std::stol(ci::test::read_file(pid_file)));
    };
    const auto alive = [](pid_t pid) { return ci::test::process_running(pid); };
    const pid_t left = started(true);
    CHECK(alive(left));
    ::kill(left, SIGKILL);
    const pid_t stopped = started(false); // the default: nothing of a step outlives it
    CHECK_FALSE(alive(stopped));
    ::kill(stopped, SIGKILL);
}

TEST_CASE("process: a timeout stops a child that ignores SIGTERM with SIGKILL") {
    ci::ProcessSpec spec;
    spec.timeout = 300ms;
    spec.kill_grace = 300ms;
    const auto start = std::chrono::steady_clock::now();
    auto stubborn = run_shell("trap '' TERM; echo started; while :; do sleep 0.05; done", spec);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(stubborn.out == "started\n");
    CHECK(stubborn.result.termination == Termination::TimedOut);
    CHECK(stubborn.result.killed_after_grace);
    CHECK(stubborn.result.signal == SIGKILL);
    CHECK(stubborn.result.describe().starts_with("timed out after "));
    CHECK(stubborn.result.describe().ends_with("it ignored SIGTERM and was killed with SIGKILL"));
    CHECK(elapsed < 10s); // a sanity bound, not a measurement
    // The time said is the stop's, not the end's: the grace comes after it.
    CHECK(stubborn.result.stopped_after >= 300ms);
    CHECK(stubborn.result.duration >= stubborn.result.stopped_after + 300ms);

    spec.kill_grace = 5s;
    auto polite = run_shell("trap 'echo bye; exit 7' TERM; while :; do sleep 0.05; done", spec);
    CHECK(polite.result.termination == Termination::TimedOut);
    CHECK_FALSE(polite.result.killed_after_grace);
    CHECK(polite.result.exit_code == 7);
    CHECK(polite.out == "bye\n");
    CHECK(polite.result.describe().ends_with("; it then exited with status 7"));
}

TEST_CASE("process: inactivity_timeout stops a silent child; output keeps it alive") {
    ci::ProcessSpec spec;
    spec.inactivity_timeout = 500ms;
    spec.kill_grace = 300ms;
    auto silent = run_shell("echo started; sleep 30", spec);
    CHECK(silent.out == "started\n");
    CHECK(silent.result.termination == Termination::Inactive);
    CHECK(silent.result.inactivity == 500ms);
    CHECK(silent.result.describe().starts_with("no output for 0.5s: stopped after "));
    // Output every 0.1s for 1.5s: never silent for 0.5s, so it ends by itself.
    auto chatty = run_shell("for i in $(seq 15); do echo $i; sleep 0.1; done", spec);
    CHECK(chatty.result.termination == Termination::Exited);
    CHECK(chatty.result.success());
}

TEST_CASE("process: on_tick is called on the calling thread while the child runs") {
    ci::ProcessSpec spec;
    const auto caller = std::this_thread::get_id();
    int ticks = 0;
    bool other_thread = false;
    spec.tick_interval = 50ms;
    spec.on_tick = [&] {
        ++ticks;
        other_thread = other_thread || std::this_thread::get_id() != caller;
    };
    auto ran = run_shell("sleep 1", spec);
    CHECK(ran.result.success());
    CHECK(ticks >= 2); // loose: a loaded machine may run few of the 20 due
    CHECK_FALSE(other_thread);
    ticks = 0;
    spec.tick_interval = 0ms;
    CHECK(run_shell("sleep 0.2", spec).result.success());
    CHECK(ticks == 0);
}

TEST_CASE("process: grandchildren are stopped with the child") {
    ci::test::TempDir dir;
    const auto pid_file = dir / "grandchild.pid";

    SUBCASE("when the child times out") {
        ci::ProcessSpec spec;
        spec.timeout = 300ms;
        spec.kill_grace = 500ms;
        auto result = run_shell("sleep 1000 & echo $! > " + pid_file.string() + "; wait", spec);
        CHECK(result.result.termination == Termination::TimedOut);
        const pid_t grandchild = read_pid(pid_file);
        REQUIRE(grandchild > 0);
        CHECK_FALSE(process_running(grandchild));
    }
    SUBCASE("when the child exits and a grandchild keeps the output pipe open") {
        ci::ProcessSpec spec;
        spec.kill_grace = 500ms;
        const auto start = std::chrono::steady_clock::now();
        auto result =
            run_shell("sleep 1000 & echo $! > " + pid_file.string() + "; echo done", spec);
        CHECK(std::chrono::steady_clock::now() - start < 10s);
        CHECK(result.result.success());
        CHECK(result.out == "done\n");
        const pid_t grandchild = read_pid(pid_file);
        REQUIRE(grandchild > 0);
        CHECK_FALSE(process_running(grandchild));
    }
    SUBCASE("when a grandchild left no pipe open and ignores SIGTERM") {
        ci::ProcessSpec spec;
        spec.kill_grace = 300ms;
        auto result = run_shell("(trap '' TERM; exec sleep 1000) >/dev/null 2>&1 & echo $! > " +
                                    pid_file.string(),
                                spec);
        CHECK(result.result.success());
        const pid_t grandchild = read_pid(pid_file);
        REQUIRE(grandchild > 0);
        CHECK_FALSE(process_running(grandchild));
    }
}

TEST_CASE("process: a stop request from another thread ends the child") {
    std::stop_source source;
    ci::ProcessSpec spec;
    spec.stop = source.get_token();
    spec.kill_grace = 2s;
    std::thread stopper([&] {
        std::this_thread::sleep_for(200ms);
        source.request_stop();
    });
    auto result = run_shell("echo waiting; sleep 1000", spec);
    stopper.join();
    CHECK(result.result.termination == Termination::Cancelled);
    CHECK(result.result.signal == SIGTERM);
    CHECK(result.out == "waiting\n");
    CHECK(result.result.describe().starts_with("stopped on request after "));

    std::stop_source already;
    already.request_stop();
    spec.stop = already.get_token();
    auto never = run_shell("sleep 1000", spec);
    CHECK(never.result.termination == Termination::Cancelled);
}

TEST_CASE("process: concurrent runs keep their output apart and leak no descriptors") {
    const int before = open_descriptors();
    std::vector<std::thread> threads;
    threads.reserve(8);
    std::atomic<int> correct{0};
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([i, &correct] {
            std::string out;
            ci::ProcessSpec spec;
            spec.argv = {"/bin/sh", "-c", "for n in 1 2 3; do echo $ID-$n; done"};
            spec.env = {{"ID", std::to_string(i)}};
            spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
            auto result = ci::run_process(spec);
            const std::string id = std::to_string(i);
            if (result && result->success() && out == fmt::format("{0}-1\n{0}-2\n{0}-3\n", id)) {
                ++correct;
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(correct == 8);
    CHECK(open_descriptors() == before);

    // The child sees only 0, 1 and 2 (and the descriptor ls opens to list them), even of what
    // this process inherited without close-on-exec.
    auto fds = run_shell("ls /proc/self/fd | sort -n | tr '\\n' ' '");
    CHECK(fds.out == "0 1 2 3 ");
}

// Issue 15: a step's descendants that left its process group (setsid, `set -m`) are stopped
// too: the step's supervisor is a child subreaper, so they are re-parented to it.
TEST_CASE("process: descendants that left the step's group or session are stopped") {
    ci::test::TempDir dir;
    const auto pid_file = dir / "escaped.pid";

    SUBCASE("a setsid process that ignores SIGTERM, at the step's timeout") {
        ci::ProcessSpec spec;
        spec.timeout = 300ms;
        spec.kill_grace = 300ms;
        auto result = run_shell(R"(setsid sh -c "trap '' TERM; echo \$\$ > )" + pid_file.string() +
                                    R"(; exec sleep 106" & sleep 100)",
                                spec);
        CHECK(result.result.termination == Termination::TimedOut);
        const pid_t escaped = read_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK_FALSE(process_running(escaped));
    }
    SUBCASE("a setsid process left running when the step exits by itself") {
        ci::ProcessSpec spec;
        spec.kill_grace = 300ms;
        auto result = run_shell("setsid sh -c 'echo $$ > " + pid_file.string() +
                                    "; exec sleep 107' >/dev/null 2>&1 </dev/null & "
                                    "while [ ! -s " +
                                    pid_file.string() + " ]; do sleep 0.01; done",
                                spec);
        CHECK(result.result.success());
        const pid_t escaped = read_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK_FALSE(process_running(escaped));
    }
    SUBCASE("a `set -m` job in a process group of its own, whose parent exited") {
        ci::ProcessSpec spec;
        spec.kill_grace = 300ms;
        auto result = run_shell("set -m; (trap '' TERM; sleep 108) >/dev/null 2>&1 & echo $! > " +
                                    pid_file.string(),
                                spec);
        CHECK(result.result.success());
        const pid_t escaped = read_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK_FALSE(process_running(escaped));
    }
}

// Two steps at once in one process: stopping what one left behind never touches the other's.
TEST_CASE("process: one step's cleanup leaves a concurrent step's processes alone") {
    ci::test::TempDir dir;
    const auto other_pid = dir / "other.pid";
    const auto go = dir / "go";
    std::atomic<bool> other_ok{false};
    std::thread other([&] {
        ci::ProcessSpec spec;
        spec.kill_grace = 300ms;
        // A setsid process of its own, running until `go` appears; the step waits for it.
        spec.argv = {"/bin/sh",
                     "-c",
                     "setsid sh -c 'echo $$ > " + other_pid.string() + "; while [ ! -e " +
                         go.string() + " ]; do sleep 0.02; done; echo finished' & wait"};
        std::string out;
        spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
        auto result = ci::run_process(spec);
        other_ok = result && result->success() && out == "finished\n";
    });
    while (read_pid(other_pid) <= 0) {
        std::this_thread::sleep_for(10ms);
    }
    // This step leaves a setsid process and times out; its cleanup runs while the other lives.
    const auto own_pid = dir / "own.pid";
    ci::ProcessSpec spec;
    spec.timeout = 200ms;
    spec.kill_grace = 200ms;
    auto result = run_shell(
        "setsid sh -c 'echo $$ > " + own_pid.string() + "; exec sleep 109' & sleep 100", spec);
    CHECK(result.result.termination == Termination::TimedOut);
    CHECK_FALSE(process_running(read_pid(own_pid)));
    CHECK(process_running(read_pid(other_pid)));
    std::ofstream(go.string()) << "go\n";
    other.join();
    CHECK(other_ok);
}

// Issue 15: the supervisor keeps hold_fd (a work directory's flock) until the step is gone, so
// the lock outlives the caller's own descriptor; the child itself does not get it.
TEST_CASE("process: hold_fd keeps a lock until every process of the child is gone") {
    ci::test::TempDir dir;
    const auto lock_file = dir / "slot.lock";
    const auto go = dir / "go";
    const auto started = dir / "started";
    const int held = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    REQUIRE(held >= 0);
    REQUIRE(::flock(held, LOCK_EX | LOCK_NB) == 0);
    std::string fds;
    std::thread step([&] {
        ci::ProcessSpec spec;
        spec.hold_fd = held;
        // The leftover ignores SIGTERM (set before it says it started, and the leader waits
        // for that), so it lives out the grace: the lock is held for 3 s after the leader's
        // exit, whatever the load. (A leftover that died at once raced the check below.)
        spec.kill_grace = 3s;
        spec.argv = {
            "/bin/sh",
            "-c",
            R"(ls /proc/self/fd | sort -n | tr '\n' ' '; setsid sh -c 'trap "" TERM; touch )" +
                started.string() + "; while [ ! -e " + go.string() +
                " ]; do sleep 0.02; done' & while [ ! -e " + started.string() +
                " ]; do sleep 0.01; done; exit 0"};
        spec.on_output = [&](ci::OutputStream, std::string_view chunk) { fds.append(chunk); };
        (void)ci::run_process(spec);
    });
    while (!std::filesystem::exists(started)) {
        std::this_thread::sleep_for(10ms);
    }
    ::close(held); // as a dying worker would: only the supervisor holds the lock now
    const auto try_lock = [&] {
        const int fd = ::open(lock_file.c_str(), O_RDWR | O_CLOEXEC);
        const bool locked = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
        ::close(fd);
        return locked;
    };
    // The leader has exited; its setsid leftover runs until `go` or until it is stopped.
    CHECK_FALSE(try_lock());
    step.join(); // the supervisor stops the leftover, then exits
    CHECK(try_lock());
    CHECK(fds == "0 1 2 3 ");
    std::ofstream(go.string()) << "go\n";
}

// Issue 15: protect_secrets overwrites secret entries of the initial environment block (what
// /proc/PID/environ shows) and makes the process non-dumpable; getenv still answers. The test
// runs itself again with a secret in its initial environment, since this process's block is
// fixed at exec.
TEST_CASE("process: protect_secrets scrubs /proc/self/environ and keeps getenv") {
    const std::string value = "scrub-me-" + std::to_string(::getpid());
    if (const char* token = std::getenv("LIBCI_SCRUB_TEST_TOKEN")) {
        const std::string before(token);
        auto scrubbed = ci::protect_secrets();
        REQUIRE_OK(scrubbed);
        CHECK(*scrubbed >= 1);
        std::ifstream in("/proc/self/environ", std::ios::binary);
        const std::string environ_text{std::istreambuf_iterator<char>(in), {}};
        CHECK(environ_text.find(before) == std::string::npos);
        CHECK(environ_text.find("LIBCI_SCRUB_TEST_PLAIN=visible") != std::string::npos);
        REQUIRE(std::getenv("LIBCI_SCRUB_TEST_TOKEN") != nullptr);
        CHECK(std::string(std::getenv("LIBCI_SCRUB_TEST_TOKEN")) == before);
        CHECK(::prctl(PR_GET_DUMPABLE) == 0);
        return;
    }
    CHECK(ci::is_secret_variable("CI_WORKER_SECRET"));
    CHECK(ci::is_secret_variable("LIBCI_CONFIG"));
    CHECK(ci::is_secret_variable("AWS_SECRET_ACCESS_KEY"));
    CHECK(ci::is_secret_variable("my_api_token"));
    CHECK_FALSE(ci::is_secret_variable("PATH"));
    std::string out;
    ci::ProcessSpec spec;
    spec.argv = {"/proc/self/exe", "--test-case=*protect_secrets*"};
    spec.env = {{"LIBCI_SCRUB_TEST_TOKEN", value}, {"LIBCI_SCRUB_TEST_PLAIN", "visible"}};
    spec.merge_stderr = true;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
    // /proc/self/exe is resolved in the supervisor's leader: this test binary again.
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    CHECK_MESSAGE(result->success(), out);
    CHECK(out.find("1 passed") != std::string::npos);
}
