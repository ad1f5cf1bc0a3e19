// Steps in cgroups of their own (issue 15). The "cgroup:" cases are pure; the "cgroup v2:"
// cases need a writable cgroup2 file system (root, or a delegated cgroup) and run as their own
// meson test (core-cgroup), which SKIPs with the reason where there is none.

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>

#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <ci/core/cgroup.h>
#include <ci/core/process.h>

#include "support/process_state.h"
#include "support/require_ok.h"
#include "support/skip.h"
#include "support/temp_dir.h"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr std::string_view hybrid_mountinfo =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";

TEST_CASE("cgroup: where this process sits, from mountinfo and /proc/self/cgroup") {
    SUBCASE("a hybrid host: cgroup2 at /sys/fs/cgroup/unified, the process in the root") {
        auto found = ci::locate_cgroup(hybrid_mountinfo, "4:memory:/x\n0::/\n");
        REQUIRE_OK(found);
        CHECK(found->mount == "/sys/fs/cgroup/unified");
        CHECK(found->own == "/sys/fs/cgroup/unified");
    }
    SUBCASE("a unified host, a systemd service") {
        auto found = ci::locate_cgroup(
            "25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            "0::/system.slice/ci-worker.service\n");
        REQUIRE_OK(found);
        CHECK(found->own == "/sys/fs/cgroup/system.slice/ci-worker.service");
    }
    SUBCASE("a container that mounts only its own subtree; an escaped space in the mount point") {
        auto found = ci::locate_cgroup(
            "25 20 0:22 /docker/abc /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n",
            "0::/docker/abc/job\n");
        REQUIRE_OK(found);
        CHECK(found->mount == "/sys/fs/my cgroup");
        CHECK(found->own == "/sys/fs/my cgroup/job");
    }
    SUBCASE("no cgroup2 mount, no 0:: line, a cgroup outside the mounted subtree") {
        auto none =
            ci::locate_cgroup("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "0::/\n");
        REQUIRE_FALSE(none);
        CHECK(none.error().code == ci::ErrorCode::Unsupported);
        CHECK(none.error().message == "no cgroup2 file system is mounted");
        auto v1 = ci::locate_cgroup(hybrid_mountinfo, "4:memory:/x\n");
        REQUIRE_FALSE(v1);
        CHECK(v1.error().message.find("no \"0::\" line") != std::string::npos);
        auto outside = ci::locate_cgroup(
            "25 20 0:22 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/docker/xyz\n");
        REQUIRE_FALSE(outside);
        CHECK(outside.error().message ==
              "this process's cgroup /docker/xyz is outside every mounted cgroup2 file system");
    }
}

// --- With a real cgroup2 file system ---------------------------------------------------------

using ci::test::process_running;

pid_t wait_for_pid(const fs::path& file) {
    for (int i = 0; i < 500; ++i) {
        std::ifstream in(file);
        pid_t pid = 0;
        if (in >> pid && pid > 0) {
            return pid;
        }
        std::this_thread::sleep_for(10ms);
    }
    return 0;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The step cgroups of this process, or nullptr after a loud skip.
std::shared_ptr<ci::StepCgroups> open_or_skip(const ci::StepCgroups::Options& options = {}) {
    auto cgroups = ci::StepCgroups::open(options);
    if (!cgroups) {
        ci::test::skip("no cgroup v2 for steps here: " + cgroups.error().message);
        return nullptr;
    }
    return *cgroups;
}

// A step that kills its own supervisor, so that its background process goes to init, out of
// the supervisor's reach: only the cgroup still holds it.
ci::ProcessResult run_escaping_step(const std::shared_ptr<ci::StepCgroups>& cgroups,
                                    const fs::path& pid_file,
                                    std::string* output = nullptr) {
    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh",
                 "-c",
                 "cat /proc/self/cgroup; sleep 1000 >/dev/null 2>&1 </dev/null & echo $! > " +
                     pid_file.string() + "; kill -9 $PPID; sleep 100"};
    spec.kill_grace = 300ms;
    spec.cgroups = cgroups;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) {
        if (output != nullptr) {
            output->append(chunk);
        }
    };
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    return *result;
}

TEST_CASE("cgroup v2: each step runs in a cgroup of its own, removed when it ends") {
    auto cgroups = open_or_skip();
    if (!cgroups) {
        return;
    }
    MESSAGE(cgroups->describe());
    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c", "cat /proc/self/cgroup"};
    spec.cgroups = cgroups;
    std::string out;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
    auto first = ci::run_process(spec);
    REQUIRE_OK(first);
    CHECK(first->success());
    const fs::path dir = first->cgroup;
    CHECK(dir.parent_path() == cgroups->base());
    CHECK(dir.filename().string().starts_with(fmt::format("libci-step-{}-", ::getpid())));
    CHECK(out.find("/" + dir.filename().string() + "\n") != std::string::npos);
    CHECK_FALSE(fs::exists(dir));

    out.clear();
    auto second = ci::run_process(spec);
    REQUIRE_OK(second);
    CHECK(second->cgroup != first->cgroup);
    CHECK(out.find("/" + fs::path(second->cgroup).filename().string()) != std::string::npos);

    spec.cgroups.reset();
    out.clear();
    auto without = ci::run_process(spec);
    REQUIRE_OK(without);
    CHECK(without->cgroup.empty());
    CHECK(out.find("libci-step-") == std::string::npos);
}

TEST_CASE("cgroup v2: a process that escaped the supervisor's tree is still killed") {
    auto cgroups = open_or_skip();
    if (!cgroups) {
        return;
    }
    ci::test::TempDir dir;
    SUBCASE("without a cgroup it outlives its step (what the cgroup is for)") {
        const auto pid_file = dir / "free.pid";
        const auto result = run_escaping_step(nullptr, pid_file);
        CHECK(result.termination == ci::ProcessResult::Termination::Signaled);
        const pid_t escaped = wait_for_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK(process_running(escaped));
        ::kill(escaped, SIGKILL);
    }
    SUBCASE("in a cgroup, killed with cgroup.kill (or the freeze fallback on an old kernel)") {
        const auto pid_file = dir / "caught.pid";
        std::string out;
        const auto result = run_escaping_step(cgroups, pid_file, &out);
        CHECK(result.termination == ci::ProcessResult::Termination::Signaled);
        CHECK(out.find("libci-step-") != std::string::npos);
        const pid_t escaped = wait_for_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK_FALSE(process_running(escaped));
        CHECK_FALSE(fs::exists(result.cgroup));
    }
    SUBCASE("in a cgroup, killed by the freeze fallback (no cgroup.kill)") {
        ci::StepCgroups::Options options;
        options.use_kill_file = false;
        auto frozen = ci::StepCgroups::open(options);
        REQUIRE_OK(frozen);
        CHECK((*frozen)->describe().find("cgroup.freeze and SIGKILL") != std::string::npos);
        const auto pid_file = dir / "frozen.pid";
        const auto result = run_escaping_step(*frozen, pid_file);
        const pid_t escaped = wait_for_pid(pid_file);
        REQUIRE(escaped > 0);
        CHECK_FALSE(process_running(escaped));
        CHECK_FALSE(fs::exists(result.cgroup));
    }
}

TEST_CASE("cgroup v2: a timeout stops a setsid process that ignores SIGTERM, in its cgroup") {
    auto cgroups = open_or_skip();
    if (!cgroups) {
        return;
    }
    ci::test::TempDir dir;
    const auto pid_file = dir / "setsid.pid";
    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh",
                 "-c",
                 R"(setsid sh -c "trap '' TERM; echo \$\$ > )" + pid_file.string() +
                     R"(; exec sleep 106" & sleep 100)"};
    spec.timeout = 300ms;
    spec.kill_grace = 300ms;
    spec.cgroups = cgroups;
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    CHECK(result->termination == ci::ProcessResult::Termination::TimedOut);
    CHECK(result->killed_after_grace);
    const pid_t escaped = wait_for_pid(pid_file);
    REQUIRE(escaped > 0);
    CHECK_FALSE(process_running(escaped));
    CHECK_FALSE(fs::exists(result->cgroup));
}

TEST_CASE("cgroup v2: a leftover of a process that is gone is killed and removed on open") {
    auto cgroups = open_or_skip();
    if (!cgroups) {
        return;
    }
    // A pid that is certainly not running: a child that has exited and been reaped.
    const pid_t gone = ::fork();
    if (gone == 0) {
        ::_exit(0);
    }
    ::waitpid(gone, nullptr, 0);
    const fs::path leftover = fs::path(cgroups->base()) / fmt::format("libci-step-{}-1", gone);
    REQUIRE(::mkdir(leftover.c_str(), 0755) == 0);
    // What a worker killed with its supervisors leaves: a process in its step's cgroup.
    const pid_t stray = ::fork();
    if (stray == 0) {
        std::ofstream(leftover / "cgroup.procs") << ::getpid() << std::flush;
        ::execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    for (int i = 0; i < 200 && read_text(leftover / "cgroup.procs").empty(); ++i) {
        std::this_thread::sleep_for(10ms);
    }
    REQUIRE(read_text(leftover / "cgroup.procs").find(std::to_string(stray)) != std::string::npos);

    auto again = ci::StepCgroups::open({});
    REQUIRE_OK(again);
    int status = 0;
    REQUIRE(::waitpid(stray, &status, 0) == stray);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    CHECK_FALSE(fs::exists(leftover));
}

TEST_CASE("cgroup v2: a delegated directory holding this process: it moves to libci-main") {
    auto probe = open_or_skip();
    if (!probe) {
        return;
    }
    // A fresh cgroup standing in for one systemd delegated (Delegate=yes), with this process in
    // it, as a worker started by such a unit is.
    const fs::path own = fs::path("/proc/self/cgroup");
    const std::string before = read_text(own);
    const fs::path delegated =
        fs::path(probe->base()) / fmt::format("libci-test-delegated-{}", ::getpid());
    REQUIRE(::mkdir(delegated.c_str(), 0755) == 0);
    std::ofstream(delegated / "cgroup.procs") << ::getpid() << std::flush;
    REQUIRE(read_text(own).find(delegated.filename().string()) != std::string::npos);

    ci::StepCgroups::Options options;
    options.directory = delegated.string();
    auto cgroups = ci::StepCgroups::open(options);
    REQUIRE_OK(cgroups);
    CHECK((*cgroups)->base() == delegated.string());
    CHECK(read_text(own).find(delegated.filename().string() + "/libci-main\n") !=
          std::string::npos);
    CHECK(read_text(delegated / "cgroup.procs").empty());

    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh", "-c", "cat /proc/self/cgroup"};
    spec.cgroups = *cgroups;
    std::string out;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    CHECK(fs::path(result->cgroup).parent_path() == delegated);
    CHECK(out.find(delegated.filename().string() + "/libci-step-") != std::string::npos);

    // Automatic from inside libci-main: the base is its parent again, not libci-main.
    auto automatic = ci::StepCgroups::open({});
    REQUIRE_OK(automatic);
    CHECK((*automatic)->base() == delegated.string());

    // Back where this process was, and nothing left behind.
    auto origin = ci::locate_cgroup(read_text("/proc/self/mountinfo"), before);
    REQUIRE_OK(origin);
    std::ofstream(fs::path(origin->own) / "cgroup.procs") << ::getpid() << std::flush;
    CHECK(::rmdir((delegated / "libci-main").c_str()) == 0);
    CHECK(::rmdir(delegated.c_str()) == 0);
    CHECK(read_text(own) == before);
}

TEST_CASE("cgroup v2: a directory outside the cgroup2 file system is refused, naming it") {
    auto probe = open_or_skip();
    if (!probe) {
        return;
    }
    ci::test::TempDir dir;
    ci::StepCgroups::Options options;
    options.directory = dir.path().string();
    auto refused = ci::StepCgroups::open(options);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().code == ci::ErrorCode::InvalidArgument);
    CHECK(refused.error().message.find("cgroup directory " + dir.path().string() +
                                       ": not a directory of the cgroup2 file system") !=
          std::string::npos);
}

} // namespace
