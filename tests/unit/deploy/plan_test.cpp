// The deploy module's pure core: settings, quoting, the ssh command line, the scripts each
// runtime runs (docker and podman ones as text: no container engine runs on these machines;
// every script is also parsed by /bin/sh -n), what status scripts print, and the decisions.

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include <ci/core/process.h>
#include <ci/deploy/plan.h>

#include "support/require_ok.h"
#include "support/temp_dir.h"

using ci::config::Deploy;
using ci::deploy::Settings;
using std::chrono::seconds;

namespace {

Settings docker_settings() {
    ci::config::Config config;
    config.buildmaster.host = "ci.example.org";
    config.buildmaster.docker_tag = "staging";
    config.deploy.image = "registry.example.org:5000/libci/master";
    auto settings = ci::deploy::settings_from(config);
    REQUIRE_OK(settings);
    return *settings;
}

Settings process_settings() {
    ci::config::Config config;
    config.deploy.target = "local";
    config.deploy.runtime = Deploy::Runtime::Process;
    config.deploy.binary = "/opt/ci-master";
    config.deploy.data_dir = "/srv/libci two";
    auto settings = ci::deploy::settings_from(config);
    REQUIRE_OK(settings);
    return *settings;
}

bool contains(const std::string& text, std::string_view part) {
    return text.find(part) != std::string::npos;
}

// /bin/sh -n: the script parses (dash, as on a Debian target).
void check_parses(const std::string& script) {
    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh", "-n", "-c", script};
    std::string errors;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) { errors.append(chunk); };
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    INFO(script);
    INFO(errors);
    CHECK(result->success());
}

} // namespace

TEST_CASE("deploy: settings come from the config, with the default target") {
    const auto settings = docker_settings();
    CHECK(settings.target == ci::config::DeployTarget{false, "root", "ci.example.org", 0});
    CHECK(settings.tag == "staging");
    CHECK(settings.data_dir == "/srv/libci");
    CHECK(settings.web_port == 8010);

    ci::config::Config config;
    auto missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.starts_with("deploy.image: required for runtime docker"));
    config.deploy.runtime = Deploy::Runtime::Process;
    missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.starts_with("deploy.binary: required"));
    config.deploy.runtime = Deploy::Runtime::Podman;
    config.deploy.image = "libci";
    config.buildmaster.web_port = 0;
    missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(contains(missing.error().message, "cannot be published"));
    // Only the port that is 0 is named.
    CHECK(missing.error().message.starts_with("buildmaster.web_port: runtime podman publishes"));
    config.buildmaster.web_port = 8010;
    config.buildmaster.worker_port = 0;
    missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.starts_with("buildmaster.worker_port: runtime podman"));
    config.buildmaster.web_port = 0;
    missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.starts_with(
        "buildmaster.web_port, buildmaster.worker_port: runtime podman"));
    config.buildmaster.web_port = 8010;
    config.buildmaster.worker_port = 9989;
    config.deploy.target = "ssh://root@-x";
    missing = ci::deploy::settings_from(config);
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().message.starts_with("deploy.target: "));
}

TEST_CASE("deploy: shell quoting") {
    CHECK(ci::deploy::shell_quote("/srv/libci") == "/srv/libci");
    CHECK(ci::deploy::shell_quote("a b") == "'a b'");
    CHECK(ci::deploy::shell_quote("") == "''");
    CHECK(ci::deploy::shell_quote("it's") == "'it'\\''s'");
    CHECK(ci::deploy::shell_quote("$(reboot)") == "'$(reboot)'");
    // What the quoted word is to a shell: itself.
    for (const char* text : {"a b", "it's", "$(x) `y` \"z\" \\ \n *", "-n"}) {
        ci::ProcessSpec spec;
        spec.argv = {"/bin/sh", "-c", "printf %s " + ci::deploy::shell_quote(text)};
        std::string out;
        spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
        auto result = ci::run_process(spec);
        REQUIRE_OK(result);
        CHECK(out == text);
    }
}

TEST_CASE("deploy: the ssh command line: BatchMode, no secret, the script last") {
    ci::config::DeployTarget target{false, "deploy", "ci.example.org", 2222};
    ci::deploy::SshOptions ssh;
    ssh.identity = "/home/me/.ssh/deploy_key";
    ssh.config = "/tmp/ssh_config";
    const auto argv = ci::deploy::command_line(target, ssh, "echo hi");
    const std::vector<std::string> expected{"ssh",
                                            "-F",
                                            "/tmp/ssh_config",
                                            "-o",
                                            "BatchMode=yes",
                                            "-o",
                                            "ConnectTimeout=10",
                                            "-o",
                                            "ServerAliveInterval=15",
                                            "-i",
                                            "/home/me/.ssh/deploy_key",
                                            "-p",
                                            "2222",
                                            "--",
                                            "deploy@ci.example.org",
                                            "echo hi"};
    CHECK(argv == expected);
    target.port = 0;
    const auto plain = ci::deploy::command_line(target, {}, "true");
    CHECK(plain == std::vector<std::string>{"ssh",
                                            "-o",
                                            "BatchMode=yes",
                                            "-o",
                                            "ConnectTimeout=10",
                                            "-o",
                                            "ServerAliveInterval=15",
                                            "--",
                                            "deploy@ci.example.org",
                                            "true"});
    CHECK(ci::deploy::command_line(ci::config::DeployTarget{true, "", "", 0}, ssh, "true") ==
          std::vector<std::string>{"/bin/sh", "-c", "true"});
}

TEST_CASE("deploy: docker commands (generated text; no Docker engine runs here)") {
    MESSAGE("no Docker engine on this machine: the docker and podman runtimes are checked as "
            "generated command lines, not run");
    const auto s = docker_settings();
    const std::string image = "registry.example.org:5000/libci/master";

    const auto start = ci::deploy::start_script(s);
    CHECK(contains(start,
                   "docker run -d --name libci-master --restart unless-stopped -p 8010:8010 -p "
                   "9989:9989 -v libci-state:/var/lib/libci -v "
                   "/srv/libci/config.json:/etc/libci/config.json:ro " +
                       image + ":staging\n"));
    CHECK(contains(start, "docker volume create libci-state"));
    CHECK(contains(start, "exit 10")); // a running master is refused
    // The config is a mounted 0600 file, never an environment variable or an argument.
    CHECK_FALSE(contains(start, " -e "));
    CHECK_FALSE(contains(start, "--env"));
    CHECK(contains(ci::deploy::start_script(s, true), image + ":libci-previous\n"));

    const auto config = ci::deploy::write_config_script(s);
    CHECK(contains(config, "umask 077\n"));
    CHECK(contains(config, "cat >/srv/libci/config.json.new\n"));
    CHECK(contains(config, "chown 10001:10001 /srv/libci/config.json.new"));
    CHECK(contains(config, "mv -f /srv/libci/config.json.new /srv/libci/config.json\n"));
    CHECK(contains(config,
                   "if [ -f /srv/libci/config.json ]; then cp -p /srv/libci/config.json "
                   "/srv/libci/config.json.previous; fi\n"));
    CHECK(ci::deploy::rollback_script(s) == "cd /srv/libci\nif [ -f config.json.previous ]; then "
                                            "mv -f config.json.previous config.json; fi\n");

    CHECK(ci::deploy::pull_script(s) == "docker pull " + image + ":staging\n");
    CHECK(contains(ci::deploy::activate_script(s, "unused"),
                   "docker tag \"$id\" " + image + ":libci-previous"));
    CHECK(ci::deploy::stop_script(s) ==
          "if docker inspect libci-master >/dev/null 2>&1; then\n"
          "  docker stop -t 90 libci-master >/dev/null && docker rm libci-master >/dev/null\n"
          "fi\n");
    CHECK(ci::deploy::logs_script(s, 50, true) ==
          "exec docker logs --tail 50 --follow libci-master\n");
    CHECK(ci::deploy::logs_script(s, 50, false) == "exec docker logs --tail 50 libci-master\n");
    CHECK(ci::deploy::prune_script(s) == "docker image prune -f >/dev/null\n");
    CHECK(contains(ci::deploy::status_script(s),
                   "docker inspect -f "
                   "'{{.State.Running}}|{{.State.StartedAt}}|{{.Image}}|{{.Config.Image}}' "
                   "libci-master"));

    auto podman = s;
    podman.runtime = Deploy::Runtime::Podman;
    CHECK(contains(ci::deploy::start_script(podman), "podman run -d --name libci-master"));
    CHECK(ci::deploy::pull_script(podman) == "podman pull " + image + ":staging\n");

    for (const auto& settings : {s, podman}) {
        for (const auto& script : {ci::deploy::status_script(settings),
                                   ci::deploy::write_config_script(settings),
                                   ci::deploy::pull_script(settings),
                                   ci::deploy::activate_script(settings, "x"),
                                   ci::deploy::rollback_script(settings),
                                   ci::deploy::start_script(settings),
                                   ci::deploy::start_script(settings, true),
                                   ci::deploy::stop_script(settings),
                                   ci::deploy::logs_script(settings, 10, true),
                                   ci::deploy::prune_script(settings)}) {
            check_parses(script);
        }
    }
}

TEST_CASE("deploy: docker status output, run through the script's own parsing") {
    // The status script with `docker` replaced by a function that prints what docker inspect
    // prints for a running container.
    const auto script = ci::deploy::status_script(docker_settings());
    ci::ProcessSpec spec;
    spec.argv = {"/bin/sh",
                 "-c",
                 "docker() { echo 'true|2026-01-02T03:04:05.123456789Z|sha256:abc|"
                 "registry.example.org:5000/libci/master:staging'; }\n" +
                     script};
    std::string out;
    spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
    auto result = ci::run_process(spec);
    REQUIRE_OK(result);
    INFO(out);
    const auto status = ci::deploy::parse_status(out);
    CHECK(status.running);
    CHECK(status.release == "sha256:abc");
    CHECK(status.version == "registry.example.org:5000/libci/master:staging");
    REQUIRE(status.uptime_seconds.has_value());
    CHECK(*status.uptime_seconds > 0);
}

TEST_CASE("deploy: process scripts quote the data dir and parse") {
    const auto s = process_settings();
    CHECK(contains(ci::deploy::status_script(s), "d='/srv/libci two'\n"));
    CHECK(contains(ci::deploy::install_release_script(s, "0123456789abcdef"),
                   "cat >'/srv/libci two/releases/0123456789abcdef/ci-master.new'\n"));
    CHECK(contains(ci::deploy::write_config_script(s), "umask 077\n"));
    CHECK_FALSE(contains(ci::deploy::write_config_script(s), "chown"));
    CHECK(contains(ci::deploy::start_script(s), "setsid \"$d/bin/libci-supervise\" \"$d\" 60"));
    CHECK(ci::deploy::logs_script(s, 5, true) ==
          "[ -e '/srv/libci two/log/master.log' ] || { echo \"no master log at "
          "\"'/srv/libci two/log/master.log'\": nothing was started there (ci-deploy start)\" "
          ">&2; exit 3; }\n"
          "exec tail -n 5 -F '/srv/libci two/log/master.log'\n");
    for (const auto& script : {ci::deploy::status_script(s),
                               ci::deploy::write_config_script(s),
                               ci::deploy::install_supervisor_script(s),
                               ci::deploy::has_release_script(s, "ab"),
                               ci::deploy::install_release_script(s, "ab"),
                               ci::deploy::activate_script(s, "ab"),
                               ci::deploy::rollback_script(s),
                               ci::deploy::start_script(s),
                               ci::deploy::stop_script(s),
                               ci::deploy::logs_script(s, 10, false),
                               ci::deploy::prune_script(s),
                               std::string(ci::deploy::supervisor_script())}) {
        check_parses(script);
    }
}

TEST_CASE("deploy: one command at a time changes a target (the deploy lock)") {
    ci::test::TempDir dir;
    auto s = process_settings();
    s.data_dir = (dir.path() / "data dir").string();
    const auto sh = [&](const std::string& script) {
        ci::ProcessSpec spec;
        spec.argv = {"/bin/sh", "-c", script};
        std::string out;
        spec.on_output = [&](ci::OutputStream, std::string_view chunk) { out.append(chunk); };
        auto result = ci::run_process(spec);
        REQUIRE_OK(result);
        return std::pair{result->exit_code, out};
    };
    CHECK(sh(ci::deploy::lock_script(s, "ci-deploy pid 7 on 'first'")).first == 0);
    const auto [status, out] = sh(ci::deploy::lock_script(s, "second"));
    CHECK(status == ci::deploy::ExitLocked);
    CHECK(contains(out,
                   "another ci-deploy is changing this target: ci-deploy pid 7 on 'first' "
                   "since "));
    CHECK(contains(out, "remove " + s.data_dir + "/run/deploy.lock"));
    CHECK(sh(ci::deploy::unlock_script(s)).first == 0);
    CHECK(sh(ci::deploy::lock_script(s, "second")).first == 0);
    check_parses(ci::deploy::lock_script(s, "x"));
}

TEST_CASE("deploy: status lines") {
    const auto status = ci::deploy::parse_status("running=true\npid=42\nuptime=3661\n"
                                                 "release=0123456789abcdef\n"
                                                 "version=ci-master 0.1.0 (libci 0.1.0)\n"
                                                 "previous=fedcba9876543210\nweb_port=8011\n"
                                                 "junk\nweb_port2=1\n");
    CHECK(status.running);
    CHECK(status.pid == 42);
    CHECK(status.uptime_seconds == 3661);
    CHECK(status.release == "0123456789abcdef");
    CHECK(status.version == "ci-master 0.1.0 (libci 0.1.0)");
    CHECK(status.previous == "fedcba9876543210");
    CHECK(status.web_port == 8011);
    const auto bad = ci::deploy::parse_status("running=yes\npid=x\nuptime=\nweb_port=70000\n");
    CHECK_FALSE(bad.running);
    CHECK_FALSE(bad.pid.has_value());
    CHECK_FALSE(bad.uptime_seconds.has_value());
    CHECK_FALSE(bad.web_port.has_value());
    CHECK(ci::deploy::parse_status("") == ci::deploy::RemoteStatus{});
}

TEST_CASE("deploy: decisions") {
    using ci::deploy::decide_wait;
    using ci::deploy::WaitDecision;
    CHECK(decide_wait(0, seconds(0), seconds(10), false) == WaitDecision::Proceed);
    CHECK(decide_wait(0, seconds(99), seconds(10), true) == WaitDecision::Proceed);
    CHECK(decide_wait(2, seconds(9), seconds(10), false) == WaitDecision::Wait);
    CHECK(decide_wait(2, seconds(10), seconds(10), false) == WaitDecision::Refuse);
    CHECK(decide_wait(2, seconds(0), seconds(10), true) == WaitDecision::Forced);
    CHECK(decide_wait(1, seconds(0), seconds(0), false) == WaitDecision::Refuse);

    using ci::deploy::decide_health;
    using ci::deploy::HealthDecision;
    CHECK(decide_health(200, seconds(0), seconds(5)) == HealthDecision::Healthy);
    CHECK(decide_health(200, seconds(50), seconds(5)) == HealthDecision::Healthy);
    CHECK(decide_health(503, seconds(4), seconds(5)) == HealthDecision::Wait);
    CHECK(decide_health(std::nullopt, seconds(4), seconds(5)) == HealthDecision::Wait);
    CHECK(decide_health(503, seconds(5), seconds(5)) == HealthDecision::Unhealthy);
    CHECK(decide_health(std::nullopt, seconds(6), seconds(5)) == HealthDecision::Unhealthy);

    using ci::deploy::Outcome;
    CHECK(ci::deploy::exit_code(Outcome::Done) == 0);
    CHECK(ci::deploy::exit_code(Outcome::Refused) == 1);
    CHECK(ci::deploy::exit_code(Outcome::RolledBack) == 2);
    CHECK(ci::deploy::exit_code(Outcome::Unreachable) == 3);
}

TEST_CASE("deploy: what a person reads") {
    CHECK(ci::deploy::format_duration(seconds(3723)) == "1h2m3s");
    CHECK(ci::deploy::format_duration(seconds(240)) == "4m0s");
    CHECK(ci::deploy::format_duration(seconds(12)) == "12s");
    CHECK(ci::deploy::format_duration(seconds(-3)) == "0s");
    CHECK(ci::deploy::countdown_line({12, 14}, seconds(298)) ==
          "waiting for 2 running builds (12, 14): 4m58s left (--force skips the wait)");
    CHECK(ci::deploy::countdown_line({7}, seconds(5)) ==
          "waiting for 1 running build (7): 5s left (--force skips the wait)");
    CHECK(ci::deploy::release_id(std::string(64, 'a')) == std::string(16, 'a'));
    CHECK(ci::deploy::announce_before("ci.example.org", "v1", "v2") ==
          "Updating the libci master on ci.example.org from v1 to v2: it restarts now.");
    CHECK(contains(ci::deploy::announce_before("h", "", "v2"), "from (not running) to v2"));
    CHECK(contains(ci::deploy::announce_rolled_back("h", "v2", "v1"), "Rolled back to v1."));
}

TEST_CASE("deploy: logs of a target where nothing was started say so, not tail's words") {
    auto s = process_settings();
    s.data_dir = "/nonexistent/libci data";
    for (const bool follow : {false, true}) {
        ci::ProcessSpec spec;
        spec.argv = {"/bin/sh", "-c", ci::deploy::logs_script(s, 10, follow)};
        std::string err;
        spec.on_output = [&](ci::OutputStream stream, std::string_view chunk) {
            if (stream == ci::OutputStream::Stderr) {
                err.append(chunk);
            }
        };
        auto result = ci::run_process(spec);
        REQUIRE_OK(result);
        CHECK(result->exit_code == 3);
        CHECK(err == "no master log at /nonexistent/libci data/log/master.log: nothing was "
                     "started there (ci-deploy start)\n");
    }
}
