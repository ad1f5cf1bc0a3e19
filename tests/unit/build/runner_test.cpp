// The build runner against real git repositories (made with the git CLI) and real processes:
// checkout merged forward, step environments, halting, CI_PROPERTIES, timeouts, cancellation,
// conflicts and checkout errors; two builds of one builder at once, each in its own work
// directory slot; a step refused when its work directory no longer holds the build's checkout.

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include <ci/build/runner.h>

#include "build/steps.h"
#include "support/git_cli.h"
#include "support/origin.h"
#include "support/temp_dir.h"

namespace {

using ci::test::git;
using namespace std::chrono_literals;

using ci::test::Origin;

// Everything the observer saw, in order.
struct Recorder {
    std::vector<std::pair<int, std::string>> started;
    std::map<int, std::string> logs;
    std::vector<std::pair<int, ci::build::StepOutcome>> finished;
    std::vector<ci::build::CheckoutRecord> checkouts;
    // Each chunk of a log file: (step, name, text).
    std::vector<std::tuple<int, std::string, std::string>> logfile_chunks;
    std::function<void(int)> on_start; // called after recording a start

    ci::build::BuildObserver observer() {
        ci::build::BuildObserver observer;
        observer.step_started = [this](int step, const std::string& name) {
            started.emplace_back(step, name);
            if (on_start) {
                on_start(step);
            }
        };
        observer.output = [this](int step, std::string_view text) { logs[step] += text; };
        observer.logfile_output = [this](int step, const std::string& name, std::string_view text) {
            logfile_chunks.emplace_back(step, name, std::string(text));
        };
        observer.checked_out = [this](const ci::build::CheckoutRecord& record) {
            checkouts.push_back(record);
        };
        observer.step_finished = [this](int step, const ci::build::StepOutcome& outcome) {
            finished.emplace_back(step, outcome);
        };
        return observer;
    }

    [[nodiscard]] std::vector<int> finished_steps() const {
        std::vector<int> out;
        out.reserve(finished.size());
        for (const auto& [step, outcome] : finished) {
            out.push_back(step);
        }
        return out;
    }

    [[nodiscard]] const ci::build::StepOutcome& outcome(int step) const {
        for (const auto& [number, outcome] : finished) {
            if (number == step) {
                return outcome;
            }
        }
        FAIL("step ", step, " was not reported");
        return finished.front().second; // not reached
    }
};

ci::build::StepSpec shell_step(std::string name, std::string script) {
    ci::build::StepSpec step;
    step.name = std::move(name);
    step.command = {"/bin/sh", "-c", std::move(script)};
    return step;
}

// A build of `branch` merged onto master, with a work root and a cache under `dir`.
struct Fixture {
    Origin origin;
    ci::test::TempDir dir{"libci-runner-work"};
    ci::build::BuildSpec spec;
    ci::build::RunnerOptions options;
    Recorder recorder;

    Fixture() {
        spec.build_id = 42;
        spec.builder = "linux/py3";
        spec.repository = "app";
        spec.url = origin.url();
        spec.branch = "feature";
        spec.merge_target = "master";
        options.work_root = dir / "work";
        options.cache_dir = dir / "cache";
    }

    ci::build::BuildOutcome run(std::stop_token stop = {}) {
        return ci::build::run_build(spec, options, recorder.observer(), std::move(stop));
    }

    [[nodiscard]] std::filesystem::path work() const {
        return ci::build::WorkSlots::directory(options.work_root, spec.builder, 0);
    }
};

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
        text.pop_back();
    }
    return text;
}

} // namespace

TEST_CASE("runner: a passing build merged forward; CI_* variables match what checked_out said") {
    Fixture f;
    f.spec.properties = {{"pr.number", "17"}};
    ::setenv("CI_GIT_TOKEN", "worker-secret-token", 1);
    ::setenv("LIBCI_RUNNER_TEST_INHERITED", "inherited", 1);
    auto env_step = shell_step("env",
                               "echo merge=$CI_MERGE_COMMIT; echo tip=$CI_BRANCH_TIP; "
                               "echo target=$CI_TARGET_BRANCH@$CI_TARGET_TIP; "
                               "echo revision=$CI_REVISION; echo workdir=$CI_WORKDIR; "
                               "echo id=$CI_BUILD_ID builder=$CI_BUILDER repo=$CI_REPOSITORY "
                               "branch=$CI_BRANCH; echo prop=$CI_PROP_pr_number; "
                               "echo inherited=$LIBCI_RUNNER_TEST_INHERITED; "
                               "echo token=${CI_GIT_TOKEN:-unset}; echo step_env=$STEP_ONLY");
    env_step.env = {{"STEP_ONLY", "hunter2-value"}};
    auto where_step = shell_step("where", "pwd; cat ../../a.txt; echo to stderr >&2");
    where_step.workdir = "sub/dir";
    where_step.timeout = 30min;
    f.spec.steps = {env_step, where_step};

    const auto outcome = f.run();
    ::unsetenv("CI_GIT_TOKEN");
    ::unsetenv("LIBCI_RUNNER_TEST_INHERITED");

    INFO("checkout log: ", f.recorder.logs[0]);
    INFO("message: ", outcome.message);
    CHECK(outcome.result == ci::BuildResult::Success);
    CHECK(outcome.message.empty());
    REQUIRE(f.recorder.checkouts.size() == 1);
    const auto& record = f.recorder.checkouts.front();
    CHECK(record == outcome.checkout);
    CHECK(record.branch_tip == f.origin.feature_tip);
    CHECK(record.target == "master");
    CHECK(record.target_tip == f.origin.master_tip);
    REQUIRE_FALSE(record.merge_commit.empty());
    CHECK(record.revision == record.merge_commit);
    CHECK(record.conflicts.empty());
    CHECK(git(f.work(), {"rev-parse", "HEAD"}) == record.merge_commit);
    CHECK(f.work() == f.options.work_root / "linux_py3" / "0");

    CHECK(f.recorder.started ==
          std::vector<std::pair<int, std::string>>{{0, "checkout"}, {1, "env"}, {2, "where"}});
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
    for (int step = 0; step <= 2; ++step) {
        CAPTURE(step);
        CHECK(f.recorder.outcome(step).result == ci::BuildResult::Success);
    }
    CHECK(f.recorder.outcome(1).exit_code == 0);
    CHECK(f.recorder.outcome(1).description == "exited with status 0");

    // The checkout's log names the three commits.
    const auto& checkout_log = f.recorder.logs[0];
    CHECK(checkout_log.find(record.branch_tip) != std::string::npos);
    CHECK(checkout_log.find(record.target_tip) != std::string::npos);
    CHECK(checkout_log.find("merge commit " + record.merge_commit) != std::string::npos);

    const auto& log = f.recorder.logs[1];
    INFO("step log: ", log);
    CHECK(log.starts_with("$ echo merge=$CI_MERGE_COMMIT;"));
    CHECK(log.find("merge=" + record.merge_commit + "\n") != std::string::npos);
    CHECK(log.find("tip=" + record.branch_tip + "\n") != std::string::npos);
    CHECK(log.find("target=master@" + record.target_tip + "\n") != std::string::npos);
    CHECK(log.find("revision=" + record.merge_commit + "\n") != std::string::npos);
    CHECK(log.find("workdir=" + f.work().string() + "\n") != std::string::npos);
    CHECK(log.find("id=42 builder=linux/py3 repo=app branch=feature\n") != std::string::npos);
    CHECK(log.find("prop=17\n") != std::string::npos);
    CHECK(log.find("inherited=inherited\n") != std::string::npos);
    CHECK(log.find("token=unset\n") != std::string::npos); // the worker's secret stays out
    CHECK(log.find("step_env=hunter2-value\n") != std::string::npos);
    // The header shows the command, never an environment value.
    CHECK(log.substr(0, log.find('\n')).find("hunter2") == std::string::npos);

    // workdir relative to the checkout, created; stderr in the same log.
    const auto& where = f.recorder.logs[2];
    INFO("where log: ", where);
    CHECK(where.starts_with("$ pwd; cat ../../a.txt; echo to stderr >&2  (in sub/dir/, "
                            "timeout 30m)\n"));
    CHECK(where.find((f.work() / "sub" / "dir").string() + "\n") != std::string::npos);
    CHECK(where.find("a2 from master\n") != std::string::npos);
    CHECK(where.find("to stderr\n") != std::string::npos);
}

TEST_CASE("runner: a failing step halts the build; later steps are neither run nor reported") {
    Fixture f;
    f.spec.steps = {shell_step("ok", "true"),
                    shell_step("broken", "echo about to fail; exit 3"),
                    shell_step("never", "touch never-ran")};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message == "step 'broken' failed: exited with status 3");
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
    CHECK(f.recorder.started.size() == 3);
    CHECK(f.recorder.outcome(2).result == ci::BuildResult::Failure);
    CHECK(f.recorder.outcome(2).exit_code == 3);
    CHECK(f.recorder.outcome(2).description == "exited with status 3");
    CHECK(f.recorder.logs[2].find("about to fail\n") != std::string::npos);
    CHECK_FALSE(f.recorder.logs.contains(3));
    CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
}

TEST_CASE("runner: halt_on_failure false: the build goes on and ends failure") {
    Fixture f;
    auto lint = shell_step("lint", "exit 1");
    lint.halt_on_failure = false;
    f.spec.steps = {lint, shell_step("test", "touch ran")};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message == "step 'lint' failed: exited with status 1");
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
    CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
    CHECK(f.recorder.outcome(2).result == ci::BuildResult::Success);
    CHECK(std::filesystem::exists(f.work() / "ran"));
}

TEST_CASE("runner: values appended to CI_PROPERTIES reach later steps as variables") {
    Fixture f;
    f.spec.steps = {
        shell_step("set",
                   "printf 'VERSION=1.2.3-secretish\\nnot a property\\n1X=2\\nCI_BRANCH=evil\\n"
                   "WITH_EQ=a=b\\n\\nLATE=first\\nLATE=second\\n' >> \"$CI_PROPERTIES\""),
        shell_step("plain", "echo nothing"),
        shell_step("use",
                   "echo \"v=$VERSION eq=$WITH_EQ late=$LATE branch=$CI_BRANCH\"; "
                   "wc -c < \"$CI_PROPERTIES\""),
    };
    auto override_step = shell_step("override", "echo \"v=$VERSION\"");
    override_step.env = {{"VERSION", "from-config"}};
    f.spec.steps.push_back(override_step);
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Success);

    const auto& set_log = f.recorder.logs[1];
    INFO("set log: ", set_log);
    CHECK(set_log.find("line 2: not KEY=VALUE; ignored") != std::string::npos);
    CHECK(set_log.find("line 3: the key is not a variable name") != std::string::npos);
    CHECK(set_log.find("line 4: CI_BRANCH is set by the runner; ignored") != std::string::npos);
    CHECK(set_log.find("set for later steps: LATE, VERSION, WITH_EQ") != std::string::npos);
    // The runner never logs a value (the header shows the command, which holds this one).
    CHECK(set_log.substr(set_log.find('\n')).find("1.2.3") == std::string::npos);

    const auto& use_log = f.recorder.logs[3];
    INFO("use log: ", use_log);
    // Carried past a step that set nothing; each step starts with an empty file.
    CHECK(use_log.find("v=1.2.3-secretish eq=a=b late=second branch=feature\n") !=
          std::string::npos);
    CHECK(use_log.find("\n0\n") != std::string::npos);
    // A step's own env wins over carried values.
    CHECK(f.recorder.logs[4].find("v=from-config\n") != std::string::npos);
}

TEST_CASE("runner: a step's timeout stops it and fails the build") {
    Fixture f;
    auto slow = shell_step("slow", "echo started; sleep 30");
    slow.timeout = 1s;
    slow.grace = 1s;
    f.spec.steps = {slow, shell_step("after", "true")};
    const auto start = std::chrono::steady_clock::now();
    const auto outcome = f.run();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed < 15s);
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message.starts_with("step 'slow' failed: timed out after 1"));
    CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
    CHECK(f.recorder.outcome(1).description.starts_with("timed out after 1"));
    CHECK(f.recorder.logs[1].starts_with("$ echo started; sleep 30  (timeout 1s)\n"));
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1});
}

TEST_CASE("runner: the whole build's timeout stops the running step") {
    Fixture f;
    f.spec.timeout = 2s;
    auto slow = shell_step("slow", "sleep 30");
    slow.grace = 1s;
    slow.halt_on_failure = false; // the build's timeout ends the build all the same
    f.spec.steps = {slow, shell_step("after", "true")};
    const auto start = std::chrono::steady_clock::now();
    const auto outcome = f.run();
    CHECK(std::chrono::steady_clock::now() - start < 15s);
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message == "build timed out after 2s during step 'slow'");
    CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1});
}

TEST_CASE("runner: a stop from another thread cancels the running step quickly") {
    Fixture f;
    // The step ignores SIGTERM: it ends only with SIGKILL, after its 1s grace.
    auto stubborn = shell_step("stubborn", "trap '' TERM; echo waiting; sleep 30; sleep 30");
    stubborn.grace = 1s;
    f.spec.steps = {stubborn, shell_step("never", "touch never-ran")};
    std::stop_source source;
    std::atomic<bool> step_running{false};
    f.recorder.on_start = [&](int step) {
        if (step == 1) {
            step_running = true;
        }
    };
    std::jthread canceller([&](const std::stop_token& own) {
        while (!step_running && !own.stop_requested()) {
            std::this_thread::sleep_for(10ms);
        }
        std::this_thread::sleep_for(300ms);
        source.request_stop();
    });
    const auto start = std::chrono::steady_clock::now();
    const auto outcome = f.run(source.get_token());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed < 10s);
    CHECK(outcome.result == ci::BuildResult::Cancelled);
    CHECK(outcome.message == "cancelled during step 'stubborn'");
    CHECK(f.recorder.outcome(1).result == ci::BuildResult::Cancelled);
    CHECK(f.recorder.outcome(1).description.find("SIGKILL") != std::string::npos);
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1});
    CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
}

TEST_CASE("runner: a merge conflict ends the build as failure before any step") {
    Fixture f;
    git(f.origin.repo, {"checkout", "-q", "-b", "clash", f.origin.feature_tip});
    ci::test::write_file(f.origin.repo / "a.txt", "a from clash\n");
    const std::string clash_tip = f.origin.commit("clash");
    f.spec.branch = "clash";
    f.spec.steps = {shell_step("never", "touch never-ran")};
    const auto outcome = f.run();
    INFO("checkout log: ", f.recorder.logs[0]);
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message == "merging master into clash conflicts: a.txt");
    CHECK(f.recorder.finished_steps() == std::vector<int>{0});
    CHECK(f.recorder.outcome(0).result == ci::BuildResult::Failure);
    REQUIRE(f.recorder.checkouts.size() == 1);
    CHECK(f.recorder.checkouts.front().conflicts == std::vector<std::string>{"a.txt"});
    CHECK(f.recorder.checkouts.front().branch_tip == clash_tip);
    CHECK(f.recorder.checkouts.front().merge_commit.empty());
    CHECK(f.recorder.logs[0].find("  a.txt\n") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
}

TEST_CASE("runner: a repository that cannot be fetched is an exception") {
    Fixture f;
    f.spec.url = "file://" + (f.dir / "no-such-repository").string();
    f.spec.steps = {shell_step("never", "true")};
    const auto outcome = f.run();
    INFO("checkout log: ", f.recorder.logs[0]);
    CHECK(outcome.result == ci::BuildResult::Exception);
    CHECK(outcome.message.starts_with("checkout: "));
    CHECK(f.recorder.finished_steps() == std::vector<int>{0});
    CHECK(f.recorder.outcome(0).result == ci::BuildResult::Exception);
    CHECK(f.recorder.logs[0].find("error: ") != std::string::npos);
    CHECK(f.recorder.logs[0].find("no-such-repository") != std::string::npos);
    CHECK(f.recorder.checkouts.empty());
}

TEST_CASE("runner: a workdir outside the checkout is refused; a missing program too") {
    Fixture f;
    auto escape = shell_step("escape", "touch escaped");
    escape.workdir = "sub/../../outside";
    escape.halt_on_failure = false;
    auto absolute = shell_step("absolute", "touch escaped");
    absolute.workdir = (f.dir / "abs").string();
    absolute.halt_on_failure = false;
    ci::build::StepSpec missing;
    missing.name = "missing";
    missing.command = {"libci-no-such-program"};
    missing.halt_on_failure = false;
    f.spec.steps = {escape, absolute, missing, shell_step("fine", "true")};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Exception);
    CHECK(outcome.message.starts_with("step 'escape' could not start: "));
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2, 3, 4});
    for (int step = 1; step <= 3; ++step) {
        CAPTURE(step);
        CHECK(f.recorder.outcome(step).result == ci::BuildResult::Exception);
        CHECK_FALSE(f.recorder.outcome(step).exit_code.has_value());
    }
    CHECK(f.recorder.outcome(1).description.find("leaves the checkout") != std::string::npos);
    CHECK(f.recorder.outcome(2).description.find("relative") != std::string::npos);
    CHECK(f.recorder.outcome(4).result == ci::BuildResult::Success);
    CHECK_FALSE(std::filesystem::exists(f.work().parent_path() / "outside"));
    CHECK_FALSE(std::filesystem::exists(f.dir / "abs"));
}

TEST_CASE("runner: step_specs copies a builder's steps") {
    ci::config::Builder builder;
    ci::config::Step step;
    step.name = "test";
    step.command = {"make", "test"};
    step.env = {{"A", "1"}};
    step.workdir = "build";
    step.timeout = 30s;
    step.grace = 5s;
    step.halt_on_failure = false;
    step.always_run = true;
    step.flunk_on_failure = false;
    step.warn_on_failure = true;
    step.inactivity_timeout = 90s;
    step.set_property = "version";
    step.test_results = "reports/*.xml";
    step.logfiles = {{"test.log", "t/test.log"}};
    builder.steps = {step};
    const auto specs = ci::build::step_specs(builder);
    REQUIRE(specs.size() == 1);
    CHECK(specs[0] == ci::build::StepSpec{.name = "test",
                                          .command = {"make", "test"},
                                          .env = {{"A", "1"}},
                                          .workdir = "build",
                                          .timeout = 30s,
                                          .grace = 5s,
                                          .halt_on_failure = false,
                                          .trigger = std::nullopt,
                                          .upload = std::nullopt,
                                          .always_run = true,
                                          .flunk_on_failure = false,
                                          .warn_on_failure = true,
                                          .inactivity_timeout = 90s,
                                          .set_property = "version",
                                          .test_results = "reports/*.xml",
                                          .logfiles = {{"test.log", "t/test.log"}}});
}

TEST_CASE("runner: helpers: header line, names, workdirs") {
    using namespace ci::build::detail;
    CHECK(header_line({"make", "test"}, "build/", 30min) ==
          "$ make test  (in build/, timeout 30m)\n");
    CHECK(header_line({"/bin/sh", "-c", "make -j4 && echo 'ok'"}, "", std::nullopt) ==
          "$ make -j4 && echo 'ok'\n");
    CHECK(header_line({"/bin/sh", "-c", "one\ntwo"}, "x", 5400s) ==
          "$ one ...  (in x/, timeout 1h30m)\n");
    CHECK(header_line({"echo", "a b", "it's"}, "", 45s) ==
          "$ echo 'a b' 'it'\\''s'  (timeout 45s)\n");
    CHECK(trimmed(header_line({std::string(500, 'x')}, "", std::nullopt)).size() < 220);
    CHECK(duration_text(3600s) == "1h");
    CHECK(duration_text(0s) == "0s");

    CHECK(property_variable("pr.number") == "CI_PROP_pr_number");
    CHECK(property_variable("Build-Type") == "CI_PROP_Build_Type");
    CHECK(valid_variable_name("_A1"));
    CHECK_FALSE(valid_variable_name("1A"));
    CHECK_FALSE(valid_variable_name("A-B"));
    CHECK_FALSE(valid_variable_name(""));
    CHECK(reserved_variable("CI_REVISION"));
    CHECK(reserved_variable("CI_PROP_x"));
    CHECK_FALSE(reserved_variable("CI_OTHER"));

    const std::filesystem::path root = "/w/b";
    CHECK(resolve_workdir(root, "").value() == root);
    CHECK(resolve_workdir(root, ".").value() == root);
    CHECK(resolve_workdir(root, "a/../c").value() == "/w/b/c");
    CHECK_FALSE(resolve_workdir(root, "..").has_value());
    CHECK_FALSE(resolve_workdir(root, "a/../../b").has_value());
    CHECK_FALSE(resolve_workdir(root, "/etc").has_value());

    CHECK(directory_name("linux/py3 (x)") == "linux_py3__x_");
    CHECK(directory_name("..") == "_..");
    CHECK(directory_name("") == "_");

    const auto lines = parse_properties("A=1\r\nB\nC=x=y");
    CHECK(lines.values == std::map<std::string, std::string>{{"A", "1"}, {"C", "x=y"}});
    REQUIRE(lines.problems.size() == 1);
    CHECK(lines.problems[0].starts_with("line 2:"));
}

TEST_CASE("runner: two builds of one builder at once, each on its own tree in its own slot") {
    Fixture f;
    // A second branch off master's first commit, changing another file than feature does.
    git(f.origin.repo, {"checkout", "-q", "-b", "other", f.origin.feature_tip + "~1"});
    ci::test::write_file(f.origin.repo / "c.txt", "c from other\n");
    const std::string other_tip = f.origin.commit("other work");
    git(f.origin.repo, {"checkout", "-q", "master"});
    f.options.slots = std::make_shared<ci::build::WorkSlots>(f.options.work_root);

    // Each build's first step waits until both builds are in it (a barrier on files), so the
    // two run at the same time; it fails if the other build never comes.
    const auto barrier = f.dir / "barrier";
    std::filesystem::create_directories(barrier);
    const std::string meet = "touch '" + barrier.string() +
                             "'/$CI_BRANCH; i=0; "
                             "while [ $(ls '" +
                             barrier.string() +
                             "' | wc -l) -lt 2 ]; do "
                             "i=$((i+1)); [ $i -gt 600 ] && echo alone && exit 1; sleep 0.05; done";
    const std::string show = "echo head=$(git rev-parse HEAD) workdir=$CI_WORKDIR; "
                             "cat b.txt; cat c.txt 2>/dev/null || echo no c.txt";
    f.spec.steps = {shell_step("meet", meet), shell_step("show", show)};
    auto other_spec = f.spec;
    other_spec.branch = "other";
    other_spec.build_id = 43;

    Recorder other_recorder;
    ci::build::BuildOutcome first;
    ci::build::BuildOutcome second;
    {
        std::jthread one(
            [&] { first = ci::build::run_build(f.spec, f.options, f.recorder.observer(), {}); });
        std::jthread two([&] {
            second = ci::build::run_build(other_spec, f.options, other_recorder.observer(), {});
        });
    }
    INFO("feature: ", first.message, "\n", f.recorder.logs[0], f.recorder.logs[1]);
    INFO("other: ", second.message, "\n", other_recorder.logs[0], other_recorder.logs[1]);
    REQUIRE(first.result == ci::BuildResult::Success);
    REQUIRE(second.result == ci::BuildResult::Success);
    CHECK(first.checkout.branch_tip == f.origin.feature_tip);
    CHECK(second.checkout.branch_tip == other_tip);
    REQUIRE_FALSE(first.checkout.merge_commit.empty());
    REQUIRE_FALSE(second.checkout.merge_commit.empty());
    CHECK(first.checkout.merge_commit != second.checkout.merge_commit);

    // Each step saw its own merge commit and its own files, in its own directory.
    const auto& feature_log = f.recorder.logs[2];
    const auto& other_log = other_recorder.logs[2];
    INFO("feature show: ", feature_log);
    INFO("other show: ", other_log);
    const auto slot = [&](int n) {
        return (f.options.work_root / "linux_py3" / std::to_string(n));
    };
    const std::regex line(R"(head=([0-9a-f]{40}) workdir=(\S+))");
    std::smatch feature_match;
    std::smatch other_match;
    REQUIRE(std::regex_search(feature_log, feature_match, line));
    REQUIRE(std::regex_search(other_log, other_match, line));
    CHECK(feature_match[1] == first.checkout.merge_commit);
    CHECK(other_match[1] == second.checkout.merge_commit);
    CHECK(feature_match[2] != other_match[2]);
    const std::set<std::string> dirs{feature_match[2], other_match[2]};
    CHECK(dirs == std::set<std::string>{slot(0).string(), slot(1).string()});
    CHECK(feature_log.find("b2 from feature\nno c.txt\n") != std::string::npos);
    CHECK(other_log.find("b1\nc from other\n") != std::string::npos);

    // Both slots are free again: the next build of the builder reuses slot 0.
    Recorder next;
    f.spec.steps = {shell_step("where", "echo workdir=$CI_WORKDIR")};
    const auto again = ci::build::run_build(f.spec, f.options, next.observer(), {});
    CHECK(again.result == ci::BuildResult::Success);
    CHECK(next.logs[1].find("workdir=" + slot(0).string() + "\n") != std::string::npos);
}

TEST_CASE("runner: a step does not run when the work directory no longer holds the checkout") {
    SUBCASE("HEAD moved (another checkout over it)") {
        Fixture f;
        auto overwrite = shell_step("overwrite", "git checkout -q --detach HEAD~1");
        auto next = shell_step("test", "touch never-ran");
        next.halt_on_failure = false; // the check ends the build all the same
        f.spec.steps = {overwrite, next, shell_step("last", "touch never-ran-either")};
        const auto outcome = f.run();
        INFO("log: ", f.recorder.logs[2]);
        CHECK(outcome.result == ci::BuildResult::Exception);
        const std::string head = git(f.work(), {"rev-parse", "HEAD"});
        CHECK(outcome.message == "step 'test' did not start: the work directory " +
                                     f.work().string() +
                                     " no longer holds this build's checkout: HEAD is " + head +
                                     ", the build checked out " + outcome.checkout.revision);
        CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
        CHECK(f.recorder.outcome(1).result == ci::BuildResult::Success);
        CHECK(f.recorder.outcome(2).result == ci::BuildResult::Exception);
        CHECK(f.recorder.outcome(2).description.find("HEAD is " + head) != std::string::npos);
        CHECK(f.recorder.logs[2].find("error: the work directory") != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
        CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran-either"));
    }
    SUBCASE("the lease lost (its lock file removed)") {
        Fixture f;
        f.spec.steps = {shell_step("unlock", "rm \"$CI_WORKDIR.lock\""),
                        shell_step("test", "touch never-ran")};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Exception);
        CHECK(outcome.message.starts_with("step 'test' did not start: work directory " +
                                          f.work().string() + ": its lock file"));
        CHECK(f.recorder.outcome(2).result == ci::BuildResult::Exception);
        CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
    }
    SUBCASE("the repository removed") {
        Fixture f;
        f.spec.steps = {shell_step("wipe", "rm -rf .git"), shell_step("test", "touch never-ran")};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Exception);
        CHECK(outcome.message.find("no longer holds this build's checkout of " +
                                   outcome.checkout.revision) != std::string::npos);
        CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));

        // The slot is the worker's own: the next build empties it and checks out again,
        // instead of refusing it for good as not a libci checkout.
        ci::test::write_file(f.work() / "left-behind.txt", "by the wiping step\n");
        Recorder next;
        f.spec.build_id = 43;
        f.spec.steps = {shell_step("test", "test -d .git && touch ran")};
        const auto again = ci::build::run_build(f.spec, f.options, next.observer(), {});
        INFO("log: ", next.logs[0]);
        CHECK(again.result == ci::BuildResult::Success);
        CHECK(std::filesystem::exists(f.work() / "ran"));
        CHECK_FALSE(std::filesystem::exists(f.work() / "left-behind.txt"));
    }
}

TEST_CASE("runner: a builder without a repository runs in its emptied work directory") {
    ci::test::TempDir dir{"libci-runner-norepo"};
    ci::build::BuildSpec spec;
    spec.build_id = 7;
    spec.builder = "cleanup";
    spec.steps = {shell_step("list",
                             "echo \"found:[$(ls -A)] repo=[$CI_REPOSITORY] rev=[$CI_REVISION]\"; "
                             "echo left > leftover; mkdir -p sub; touch sub/file")};
    ci::build::RunnerOptions options;
    options.work_root = dir / "work";
    options.cache_dir = dir / "cache";
    const auto work = ci::build::WorkSlots::directory(options.work_root, spec.builder, 0);
    // What an earlier build left, including a symbolic link out of the directory: the link
    // goes, what it points to stays.
    std::filesystem::create_directories(work / "old");
    ci::test::write_file(dir / "outside", "keep me");
    std::filesystem::create_symlink(dir / "outside", work / "link");
    for (int run = 0; run < 2; ++run) {
        CAPTURE(run);
        Recorder recorder;
        const auto outcome = ci::build::run_build(spec, options, recorder.observer(), {});
        CHECK(outcome.result == ci::BuildResult::Success);
        REQUIRE(recorder.started.size() == 2);
        CHECK(recorder.started[0] == std::pair<int, std::string>{0, "workdir"});
        CHECK(recorder.checkouts.empty()); // nothing checked out
        CHECK(recorder.outcome(0).result == ci::BuildResult::Success);
        // The step saw an empty directory.
        CHECK(recorder.logs[1].find("\nfound:[] repo=[] rev=[]\n") != std::string::npos);
        CHECK(std::filesystem::exists(work / "leftover"));
    }
    CHECK(ci::test::read_file(dir / "outside") == "keep me");
    CHECK_FALSE(std::filesystem::exists(work / "link"));
}

TEST_CASE("runner: a trigger step asks the observer and takes its answer") {
    Fixture f;
    auto trigger = ci::build::StepSpec{};
    trigger.name = "acceptance";
    trigger.trigger = ci::config::Trigger{{"acceptance"}, true};
    f.spec.steps = {trigger, shell_step("after", "touch after")};
    std::vector<int> asked;
    auto observer = f.recorder.observer();
    SUBCASE("a success goes on") {
        observer.trigger = [&](int step, const ci::build::StepSpec& spec, auto, auto) {
            asked.push_back(step);
            CHECK(spec.trigger->builders == std::vector<std::string>{"acceptance"});
            ci::build::StepOutcome answer;
            answer.result = ci::BuildResult::Success;
            answer.description = "requested";
            return answer;
        };
        const auto outcome = ci::build::run_build(f.spec, f.options, observer, {});
        CHECK(outcome.result == ci::BuildResult::Success);
        CHECK(asked == std::vector<int>{1});
        CHECK(f.recorder.logs[1].find("$ trigger acceptance (waiting)\n") != std::string::npos);
        CHECK(f.recorder.logs[1].find("-- success: requested") != std::string::npos);
        CHECK(std::filesystem::exists(f.work() / "after"));
    }
    SUBCASE("the worst result of the triggered builds halts the build") {
        observer.trigger = [&](int step, const ci::build::StepSpec&, auto, auto) {
            asked.push_back(step);
            ci::build::StepOutcome answer;
            answer.result = ci::BuildResult::Failure;
            answer.description = "acceptance: failure (request 3)";
            return answer;
        };
        const auto outcome = ci::build::run_build(f.spec, f.options, observer, {});
        CHECK(outcome.result == ci::BuildResult::Failure);
        CHECK(outcome.message == "step 'acceptance': acceptance: failure (request 3)");
        CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1});
        CHECK_FALSE(std::filesystem::exists(f.work() / "after"));
    }
    SUBCASE("no one to ask: an exception") {
        const auto outcome = ci::build::run_build(f.spec, f.options, f.recorder.observer(), {});
        CHECK(outcome.result == ci::BuildResult::Exception);
        CHECK(f.recorder.outcome(1).result == ci::BuildResult::Exception);
    }
}
TEST_CASE("runner: always_run steps run after a failure ended the build; others do not") {
    Fixture f;
    auto cleanup = shell_step("cleanup", "touch cleaned; echo cleaning");
    cleanup.always_run = true;
    auto second = shell_step("second cleanup", "exit 4");
    second.always_run = true;
    f.spec.steps = {shell_step("broken", "exit 3"),
                    shell_step("skipped", "touch never-ran"),
                    cleanup,
                    second,
                    shell_step("skipped too", "touch never-ran-2")};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Failure);
    // The first failure is what the build says, not the cleanup's.
    CHECK(outcome.message == "step 'broken' failed: exited with status 3");
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 3, 4});
    CHECK(f.recorder.outcome(3).result == ci::BuildResult::Success);
    CHECK(f.recorder.outcome(4).result == ci::BuildResult::Failure);
    CHECK(std::filesystem::exists(f.work() / "cleaned"));
    CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran"));
    CHECK_FALSE(std::filesystem::exists(f.work() / "never-ran-2"));
}

TEST_CASE("runner: always_run steps run after the build's timeout, under their own limits") {
    Fixture f;
    f.spec.timeout = 1s;
    auto slow = shell_step("slow", "sleep 30");
    slow.grace = 1s;
    auto cleanup = shell_step("cleanup", "sleep 1; touch cleaned");
    cleanup.always_run = true;
    f.spec.steps = {slow, cleanup};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Failure);
    CHECK(outcome.message == "build timed out after 1s during step 'slow'");
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
    CHECK(f.recorder.outcome(2).result == ci::BuildResult::Success);
    CHECK(std::filesystem::exists(f.work() / "cleaned"));
}

TEST_CASE("runner: flunk_on_failure and warn_on_failure decide what a failure makes the build") {
    Fixture f;
    auto warn = shell_step("lint", "exit 1");
    warn.flunk_on_failure = false;
    warn.warn_on_failure = true;
    warn.halt_on_failure = false;
    auto ignored = shell_step("flaky", "exit 2");
    ignored.flunk_on_failure = false;
    ignored.halt_on_failure = false;
    SUBCASE("warnings") {
        f.spec.steps = {warn, shell_step("test", "true")};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Warnings);
        CHECK(outcome.message == "step 'lint' failed: exited with status 1");
        CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
        CHECK(f.recorder.outcome(2).result == ci::BuildResult::Success);
    }
    SUBCASE("neither flunk nor warn: the build succeeds") {
        f.spec.steps = {ignored, shell_step("test", "true")};
        CHECK(f.run().result == ci::BuildResult::Success);
        CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
    }
    SUBCASE("a flunking failure after a warning: failure") {
        f.spec.steps = {warn, shell_step("test", "exit 5")};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Failure);
        CHECK(outcome.message == "step 'test' failed: exited with status 5");
    }
    SUBCASE("a step that cannot start is an exception whatever its flags") {
        ignored.command = {"/nonexistent/program"};
        f.spec.steps = {ignored};
        CHECK(f.run().result == ci::BuildResult::Exception);
    }
}

TEST_CASE("runner: inactivity_timeout stops a silent step, not a chatty one") {
    Fixture f;
    auto silent = shell_step("silent", "echo one line; sleep 30");
    silent.inactivity_timeout = 1s;
    silent.grace = 1s;
    // Writes every 0.3s for 2s: never silent for 1s, so it runs to its end.
    auto chatty = shell_step("chatty", "for i in 1 2 3 4 5 6; do echo $i; sleep 0.3; done");
    chatty.inactivity_timeout = 1s;
    f.spec.steps = {chatty, silent, shell_step("after", "true")};
    const auto start = std::chrono::steady_clock::now();
    const auto outcome = f.run();
    CHECK(std::chrono::steady_clock::now() - start < 20s);
    CHECK(f.recorder.outcome(1).result == ci::BuildResult::Success);
    CHECK(outcome.result == ci::BuildResult::Failure);
    INFO(outcome.message);
    CHECK(outcome.message.starts_with("step 'silent' failed: no output for 1s: stopped after"));
    CHECK(f.recorder.outcome(2).description.starts_with("no output for 1s"));
    CHECK(f.recorder.logs[2].find("-- no output for 1s") != std::string::npos);
    CHECK(f.recorder.finished_steps() == std::vector<int>{0, 1, 2});
}

TEST_CASE("runner: set_property, then ${prop:NAME} and the build's values in later steps") {
    Fixture f;
    f.spec.properties = {{"forced", "from force"}};
    auto version = shell_step("version", "echo '  1.2.3 '; echo 'to stderr' >&2");
    version.set_property = "version";
    ci::build::StepSpec use;
    use.name = "use";
    use.command = {"/bin/sh",
                   "-c",
                   R"(printf '%s|' "$@"; echo "env=$V prop_env=$CI_PROP_version"; pwd)",
                   "argv0",
                   "v=${prop:version}",
                   "${prop:forced}",
                   "${branch}",
                   "${build_id}",
                   "$${prop:version}",
                   "a;b $(x)"};
    use.env = {{"V", "${prop:version}-${revision}"}};
    use.workdir = "out/${prop:version}";
    f.spec.steps = {version, use};
    const auto outcome = f.run();
    REQUIRE(outcome.result == ci::BuildResult::Success);
    CHECK(f.recorder.outcome(1).properties ==
          std::map<std::string, std::string>{{"version", "1.2.3"}});
    CHECK(f.recorder.logs[1].find("set_property: version = \"1.2.3\"") != std::string::npos);
    const auto& log = f.recorder.logs[2];
    INFO(log);
    const auto revision = f.recorder.checkouts.at(0).revision;
    CHECK(log.find("v=1.2.3|from force|feature|42|${prop:version}|a;b $(x)|env=1.2.3-" + revision +
                   " prop_env=1.2.3\n") != std::string::npos);
    CHECK(log.find((f.work() / "out" / "1.2.3").string() + "\n") != std::string::npos);
}

TEST_CASE("runner: set_property and placeholders that cannot be filled in fail the step") {
    Fixture f;
    SUBCASE("an unknown property") {
        ci::build::StepSpec use;
        use.name = "use";
        use.command = {"echo", "${prop:nobody_set_me}"};
        f.spec.steps = {use, shell_step("after", "touch ran")};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Failure);
        CHECK(outcome.message.find("the build has no property \"nobody_set_me\"") !=
              std::string::npos);
        CHECK(f.recorder.outcome(1).result == ci::BuildResult::Failure);
        CHECK_FALSE(std::filesystem::exists(f.work() / "ran"));
    }
    SUBCASE("output over 64 KiB") {
        auto big = shell_step("big", "head -c 70000 /dev/zero | tr '\\0' x");
        big.set_property = "big";
        f.spec.steps = {big};
        const auto outcome = f.run();
        CHECK(outcome.result == ci::BuildResult::Failure);
        CHECK(outcome.message.find("set_property big: the standard output is larger than 64 KiB") !=
              std::string::npos);
        CHECK(f.recorder.outcome(1).properties.empty());
    }
    SUBCASE("a failed step sets nothing") {
        auto failing = shell_step("v", "echo 1.0; exit 1");
        failing.set_property = "v";
        failing.halt_on_failure = false;
        ci::build::StepSpec use;
        use.name = "use";
        use.command = {"echo", "${prop:v}"};
        f.spec.steps = {failing, use};
        CHECK(f.run().result == ci::BuildResult::Failure);
        CHECK(f.recorder.outcome(1).properties.empty());
        CHECK(f.recorder.outcome(2).description.find("no property \"v\"") != std::string::npos);
    }
}

TEST_CASE("runner: test_results reads JUnit files the glob matches, inside the checkout only") {
    Fixture f;
    const ci::test::TempDir outside{"libci-runner-outside"};
    {
        std::ofstream secret(outside / "secret.xml");
        secret << "<testsuite><testcase name='leaked'><failure/></testcase></testsuite>";
    }
    const std::string write =
        "mkdir -p reports && "
        "printf '%s' '<testsuites><testsuite name=\"a\"><testcase classname=\"pkg.A\" "
        "name=\"ok\"/><testcase classname=\"pkg.A\" name=\"bad\"><failure message=\"x\"/>"
        "</testcase></testsuite></testsuites>' > reports/a.xml && "
        "printf '%s' '<testsuite><testcase name=\"s\"><skipped/></testcase><testcase "
        "name=\"e\"><error/></testcase></testsuite>' > reports/b.xml && "
        "echo 'not xml' > reports/c.xml && "
        "ln -s " +
        (outside / "secret.xml").string() + " reports/d.xml; exit 1";
    auto tests = shell_step("tests", write);
    tests.test_results = "reports/*.xml";
    f.spec.steps = {tests};
    const auto outcome = f.run();
    CHECK(outcome.result == ci::BuildResult::Failure);
    const auto& results = f.recorder.outcome(1).tests;
    REQUIRE(results.has_value());
    CHECK(results->passed == 1);
    CHECK(results->failed == 1);
    CHECK(results->skipped == 1);
    CHECK(results->errors == 1);
    CHECK(results->failed_tests == std::vector<std::string>{"pkg.A.bad", "e"});
    const auto& log = f.recorder.logs[1];
    INFO(log);
    CHECK(log.find("test_results: reports/c.xml: JUnit XML: ") != std::string::npos);
    CHECK(log.find("test_results: reports/d.xml: not a regular file") != std::string::npos);
    CHECK(log.find("test results (2 files): 1 passed, 1 failed, 1 skipped, 1 errors") !=
          std::string::npos);
    CHECK(log.find("leaked") == std::string::npos);
}

TEST_CASE("runner: logfiles are followed while the step runs, from where they stood") {
    Fixture f;
    const ci::test::TempDir outside{"libci-runner-logfile"};
    // What an earlier step wrote to the file is not sent again with this step's log file.
    auto earlier = shell_step("earlier", "mkdir -p t && echo 'earlier step' > t/test.log");
    auto step = shell_step("tests",
                           "echo 'line 1' >> t/test.log; sleep 1.5; echo 'line 2' >> t/test.log; "
                           "echo 'fresh' > other.log; ln -sf " +
                               (outside / "secret").string() + " link.log; echo done");
    step.logfiles = {{"test.log", "t/test.log"}, {"other", "other.log"}, {"link", "link.log"}};
    f.spec.steps = {earlier, step};
    {
        std::ofstream secret(outside / "secret");
        secret << "not for the master\n";
    }
    REQUIRE(f.run().result == ci::BuildResult::Success);
    std::map<std::string, std::string> texts;
    std::map<std::string, int> chunks;
    for (const auto& [number, name, text] : f.recorder.logfile_chunks) {
        CHECK(number == 2);
        texts[name] += text;
        ++chunks[name];
    }
    CHECK(texts["test.log"] == "line 1\nline 2\n");
    // Live: line 1 went out before line 2 was written.
    CHECK(chunks["test.log"] >= 2);
    CHECK(texts["other"] == "fresh\n");
    CHECK_FALSE(texts.contains("link"));
    const auto& log = f.recorder.logs[2];
    INFO(log);
    CHECK(log.find("logfiles: link (link.log): not a regular file") != std::string::npos);
    CHECK(log.find("not for the master") == std::string::npos);
}
