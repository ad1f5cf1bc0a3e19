#include <algorithm>
#include <charconv>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ci/deploy/plan.h>

namespace ci::deploy {

namespace {

using config::Deploy;

bool is_container(const Settings& settings) {
    return settings.runtime != Deploy::Runtime::Process;
}

// "docker" or "podman": the client that manages the container.
std::string engine(const Settings& settings) {
    return std::string(config::to_string(settings.runtime));
}

std::string image_ref(const Settings& settings, std::string_view tag) {
    return shell_quote(fmt::format("{}:{}", settings.image, tag));
}

// DATA_DIR, or a path below it, quoted.
std::string path(const Settings& settings, std::string_view below = {}) {
    return shell_quote(below.empty() ? settings.data_dir
                                     : fmt::format("{}/{}", settings.data_dir, below));
}

// The shell function that tells our supervisor from another process that got its pid.
constexpr std::string_view alive_function =
    "alive() { kill -0 \"$1\" 2>/dev/null && grep -q libci-supervise \"/proc/$1/cmdline\" "
    "2>/dev/null; }\n";

std::optional<std::int64_t> to_integer(std::string_view text) {
    std::int64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc{} || ptr != end) {
        return std::nullopt;
    }
    return value;
}

} // namespace

Result<Settings> settings_from(const config::Config& config) {
    Settings out;
    auto target = config::parse_deploy_target(config.deploy.target, config.buildmaster.host);
    if (!target) {
        return fail(ErrorCode::InvalidArgument, "deploy.target: " + target.error().message);
    }
    out.target = std::move(*target);
    out.runtime = config.deploy.runtime;
    out.image = config.deploy.image;
    out.tag = config.buildmaster.docker_tag;
    out.data_dir = config.deploy.data_dir;
    out.binary = config.deploy.binary;
    out.web_port = config.buildmaster.web_port;
    out.worker_port = config.buildmaster.worker_port;
    out.host = config.buildmaster.host;
    if (is_container(out)) {
        if (out.image.empty()) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("deploy.image: required for runtime {} (the master's image; "
                                    "or deploy.runtime: process with deploy.binary)",
                                    config::to_string(out.runtime)));
        }
        if (out.web_port == 0 || out.worker_port == 0) {
            const char* keys = out.web_port != 0 ? "buildmaster.worker_port"
                               : out.worker_port != 0
                                   ? "buildmaster.web_port"
                                   : "buildmaster.web_port, buildmaster.worker_port";
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("{}: runtime {} publishes fixed ports; 0 (a free port) "
                                    "cannot be published",
                                    keys,
                                    config::to_string(out.runtime)));
        }
    } else if (out.binary.empty()) {
        return fail(ErrorCode::InvalidArgument,
                    "deploy.binary: required for runtime process (the ci-master to install)");
    }
    return out;
}

std::string shell_quote(std::string_view text) {
    const bool plain = !text.empty() && std::ranges::all_of(text, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("_./:@%+=,-").find(c) != std::string_view::npos;
    });
    if (plain) {
        return std::string(text);
    }
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += '\'';
    return out;
}

std::vector<std::string>
command_line(const config::DeployTarget& target, const SshOptions& ssh, std::string_view script) {
    if (target.local) {
        return {"/bin/sh", "-c", std::string(script)};
    }
    std::vector<std::string> argv{"ssh"};
    if (!ssh.config.empty()) {
        argv.insert(argv.end(), {"-F", ssh.config});
    }
    argv.insert(argv.end(),
                {"-o",
                 "BatchMode=yes",
                 "-o",
                 fmt::format("ConnectTimeout={}", ssh.connect_timeout),
                 "-o",
                 "ServerAliveInterval=15"});
    if (!ssh.identity.empty()) {
        argv.insert(argv.end(), {"-i", ssh.identity});
    }
    if (target.port != 0) {
        argv.insert(argv.end(), {"-p", std::to_string(target.port)});
    }
    argv.insert(argv.end(),
                {"--", fmt::format("{}@{}", target.user, target.host), std::string(script)});
    return argv;
}

std::string release_id(std::string_view sha256_hex) {
    return std::string(sha256_hex.substr(0, 16));
}

RemoteStatus parse_status(std::string_view text) {
    RemoteStatus status;
    while (!text.empty()) {
        const auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        const auto equals = line.find('=');
        if (equals == std::string_view::npos) {
            continue;
        }
        const std::string_view key = line.substr(0, equals);
        const std::string_view value = line.substr(equals + 1);
        if (key == "running") {
            status.running = value == "true";
        } else if (key == "pid") {
            status.pid = to_integer(value);
        } else if (key == "uptime") {
            status.uptime_seconds = to_integer(value);
        } else if (key == "release") {
            status.release = std::string(value);
        } else if (key == "version") {
            status.version = std::string(value);
        } else if (key == "previous") {
            status.previous = std::string(value);
        } else if (key == "web_port") {
            if (auto port = to_integer(value); port && *port > 0 && *port <= 65535) {
                status.web_port = static_cast<std::uint16_t>(*port);
            }
        }
    }
    return status;
}

std::string status_script(const Settings& s) {
    if (is_container(s)) {
        // One inspect, fields separated by '|' (none of them holds one).
        return fmt::format(
            "out=$({0} inspect -f '{{{{.State.Running}}}}|{{{{.State.StartedAt}}}}|"
            "{{{{.Image}}}}|{{{{.Config.Image}}}}' {1} 2>/dev/null) || {{ echo running=false; "
            "exit 0; }}\n"
            "running=${{out%%|*}}; rest=${{out#*|}}; started=${{rest%%|*}}; rest=${{rest#*|}}\n"
            "echo running=$running\n"
            "echo release=${{rest%%|*}}\n"
            "echo version=${{rest#*|}}\n"
            "if [ \"$running\" = true ]; then\n"
            "  echo uptime=$(( $(date +%s) - $(date -d \"$started\" +%s) ))\n"
            "fi\n",
            engine(s),
            container_name);
    }
    return fmt::format(
        "{0}"
        "d={1}\n"
        "sup=$(cat \"$d/run/supervisor.pid\" 2>/dev/null)\n"
        "if [ -n \"$sup\" ] && alive \"$sup\"; then echo running=true; else echo "
        "running=false; fi\n"
        "m=$(cat \"$d/run/master.pid\" 2>/dev/null)\n"
        "if [ -n \"$m\" ] && kill -0 \"$m\" 2>/dev/null; then\n"
        "  echo pid=$m\n"
        "  echo uptime=$(( $(date +%s) - $(stat -c %Y \"$d/run/master.pid\") ))\n"
        "fi\n"
        "[ -L \"$d/current\" ] && echo release=$(basename \"$(readlink \"$d/current\")\")\n"
        "[ -f \"$d/current/version\" ] && echo version=$(head -n 1 \"$d/current/version\")\n"
        "[ -L \"$d/previous\" ] && echo previous=$(basename \"$(readlink \"$d/previous\")\")\n"
        "[ -f \"$d/run/ports.json\" ] && echo web_port=$(sed -n "
        "'s/.*\"web_port\": *\\([0-9]*\\).*/\\1/p' \"$d/run/ports.json\")\n"
        "exit 0\n",
        alive_function,
        path(s));
}

std::string lock_script(const Settings& s, std::string_view owner) {
    // No `exit 0` at the end: callers run another script after it in the same shell.
    return fmt::format("d={0}\n"
                       "mkdir -p \"$d/run\" || exit 1\n"
                       "if ! mkdir \"$d/run/deploy.lock\" 2>/dev/null; then\n"
                       "  echo \"another ci-deploy is changing this target: $(cat "
                       "\"$d/run/deploy.lock/owner\" 2>/dev/null) (if it is gone, remove "
                       "$d/run/deploy.lock)\"\n"
                       "  exit {2}\n"
                       "fi\n"
                       "echo {1} \"since $(date -u +%Y-%m-%dT%H:%M:%SZ)\" "
                       ">\"$d/run/deploy.lock/owner\"\n",
                       path(s),
                       shell_quote(owner),
                       ExitLocked);
}

std::string unlock_script(const Settings& s) {
    return fmt::format("rm -rf {}\n", path(s, "run/deploy.lock"));
}

std::string write_config_script(const Settings& s) {
    std::string script = fmt::format("set -e\n"
                                     "umask 077\n"
                                     "mkdir -p {0}\n"
                                     "cat >{1}\n",
                                     path(s),
                                     path(s, "config.json.new"));
    if (is_container(s)) {
        script += fmt::format("chown {0}:{0} {1} || {{ echo 'the container runs as uid {0}, "
                              "which must own config.json: deploy as root'; rm -f {1}; exit {2}; "
                              "}}\n",
                              image_uid,
                              path(s, "config.json.new"),
                              ExitNotPermitted);
    }
    // The config before, for a rollback (cp -p: mode 0600 and owner kept).
    script += fmt::format("if [ -f {0} ]; then cp -p {0} {1}; fi\n"
                          "mv -f {2} {0}\n",
                          path(s, "config.json"),
                          path(s, "config.json.previous"),
                          path(s, "config.json.new"));
    return script;
}

std::string install_supervisor_script(const Settings& s) {
    return fmt::format("set -e\n"
                       "umask 022\n"
                       "mkdir -p {0}\n"
                       "cat >{1}\n"
                       "chmod 755 {1}\n"
                       "mv -f {1} {2}\n",
                       path(s, "bin"),
                       path(s, "bin/libci-supervise.new"),
                       path(s, "bin/libci-supervise"));
}

std::string has_release_script(const Settings& s, std::string_view id) {
    const std::string release = fmt::format("releases/{}", id);
    return fmt::format("[ -x {0} ] && [ -s {1} ] && head -n 1 {1}\n",
                       path(s, release + "/ci-master"),
                       path(s, release + "/version"));
}

std::string install_release_script(const Settings& s, std::string_view id) {
    const std::string release = fmt::format("releases/{}", id);
    return fmt::format("set -e\n"
                       "umask 022\n"
                       "mkdir -p {0}\n"
                       "cat >{1}\n"
                       "chmod 755 {1}\n"
                       "if ! {1} --version >{2} 2>&1; then\n"
                       "  echo 'the binary does not run on the target:'; cat {2}; rm -rf {0}\n"
                       "  exit {4}\n"
                       "fi\n"
                       "mv -f {1} {3}\n"
                       "mv -f {2} {5}\n"
                       "head -n 1 {5}\n",
                       path(s, release),
                       path(s, release + "/ci-master.new"),
                       path(s, release + "/version.new"),
                       path(s, release + "/ci-master"),
                       ExitBinaryBroken,
                       path(s, release + "/version"));
}

std::string pull_script(const Settings& s) {
    if (!is_container(s)) {
        return "true\n";
    }
    return fmt::format("{} pull {}\n", engine(s), image_ref(s, s.tag));
}

std::string activate_script(const Settings& s, std::string_view id) {
    if (is_container(s)) {
        return fmt::format("if id=$({0} inspect -f '{{{{.Image}}}}' {1} 2>/dev/null); then\n"
                           "  {0} tag \"$id\" {2}\n"
                           "fi\n",
                           engine(s),
                           container_name,
                           image_ref(s, "libci-previous"));
    }
    return fmt::format("set -e\n"
                       "cd {0}\n"
                       "if [ -L current ] && [ \"$(readlink current)\" != {1} ]; then\n"
                       "  ln -sfn \"$(readlink current)\" previous\n"
                       "fi\n"
                       "ln -sfn {1} current.new\n"
                       "mv -fT current.new current\n",
                       path(s),
                       shell_quote(fmt::format("releases/{}", id)));
}

std::string rollback_script(const Settings& s) {
    // The config the previous master ran with: a new config may be what it cannot read.
    const std::string config = "if [ -f config.json.previous ]; then mv -f config.json.previous "
                               "config.json; fi\n";
    if (is_container(s)) {
        return fmt::format("cd {}\n{}", path(s), config);
    }
    return fmt::format("set -e\n"
                       "cd {0}\n"
                       "[ -L previous ] || {{ echo 'no previous release to go back to'; exit {1}; "
                       "}}\n"
                       "ln -sfn \"$(readlink previous)\" current.new\n"
                       "mv -fT current.new current\n"
                       "{2}",
                       path(s),
                       ExitNothingInstalled,
                       config);
}

std::string start_script(const Settings& s, bool previous) {
    if (is_container(s)) {
        return fmt::format(
            "set -e\n"
            "if state=$({0} inspect -f '{{{{.State.Running}}}}' {1} 2>/dev/null); then\n"
            "  if [ \"$state\" = true ]; then echo 'a master runs already (container {1})'; "
            "exit {2}; fi\n"
            "  {0} rm {1} >/dev/null\n"
            "fi\n"
            "{0} volume create {3} >/dev/null\n"
            "{0} run -d --name {1} --restart unless-stopped -p {4}:{4} -p {5}:{5} "
            "-v {3}:/var/lib/libci -v {6}:/etc/libci/config.json:ro {7}\n",
            engine(s),
            container_name,
            ExitAlreadyRunning,
            state_volume,
            s.web_port,
            s.worker_port,
            path(s, "config.json"),
            image_ref(s, previous ? "libci-previous" : s.tag));
    }
    return fmt::format("{0}"
                       "d={1}\n"
                       "sup=$(cat \"$d/run/supervisor.pid\" 2>/dev/null)\n"
                       "if [ -n \"$sup\" ] && alive \"$sup\"; then echo \"a master runs already "
                       "(supervisor pid $sup)\"; exit {2}; fi\n"
                       "[ -x \"$d/current/ci-master\" ] || {{ echo \"no release installed in "
                       "$d/current\"; exit {3}; }}\n"
                       "mkdir -p \"$d/run\" \"$d/log\" \"$d/state\"\n"
                       "rm -f \"$d/run/ports.json\"\n"
                       "setsid \"$d/bin/libci-supervise\" \"$d\" {4} </dev/null >/dev/null 2>&1 &\n"
                       "i=0\n"
                       "while ! [ -s \"$d/run/supervisor.pid\" ] || ! alive \"$(cat "
                       "\"$d/run/supervisor.pid\")\"; do\n"
                       "  i=$((i + 1)); [ $i -gt 100 ] && {{ echo 'the supervisor did not "
                       "start'; exit 1; }}\n"
                       "  sleep 0.1\n"
                       "done\n",
                       alive_function,
                       path(s),
                       ExitAlreadyRunning,
                       ExitNothingInstalled,
                       s.shutdown_grace);
}

std::string stop_script(const Settings& s) {
    if (is_container(s)) {
        return fmt::format("if {0} inspect {1} >/dev/null 2>&1; then\n"
                           "  {0} stop -t {2} {1} >/dev/null && {0} rm {1} >/dev/null\n"
                           "fi\n",
                           engine(s),
                           container_name,
                           s.shutdown_grace + 30);
    }
    // Tenths of a second: the master's grace for running builds, and 30 s for the rest.
    return fmt::format("{0}"
                       "d={1}\n"
                       "sup=$(cat \"$d/run/supervisor.pid\" 2>/dev/null)\n"
                       "if [ -z \"$sup\" ] || ! alive \"$sup\"; then rm -f "
                       "\"$d/run/supervisor.pid\"; exit 0; fi\n"
                       "kill -TERM \"$sup\"\n"
                       "i=0\n"
                       "while alive \"$sup\"; do\n"
                       "  i=$((i + 1))\n"
                       "  if [ $i -gt {2} ]; then\n"
                       "    echo 'the master did not stop in time: killed'\n"
                       "    m=$(cat \"$d/run/master.pid\" 2>/dev/null)\n"
                       "    kill -KILL \"$sup\" 2>/dev/null; [ -n \"$m\" ] && kill -KILL \"$m\" "
                       "2>/dev/null\n"
                       "    rm -f \"$d/run/supervisor.pid\" \"$d/run/master.pid\"\n"
                       "    break\n"
                       "  fi\n"
                       "  sleep 0.1\n"
                       "done\n"
                       "exit 0\n",
                       alive_function,
                       path(s),
                       (s.shutdown_grace + 30) * 10);
}

std::string logs_script(const Settings& s, int lines, bool follow) {
    if (is_container(s)) {
        return fmt::format("exec {} logs --tail {}{} {}\n",
                           engine(s),
                           lines,
                           follow ? " --follow" : "",
                           container_name);
    }
    // Said plainly when nothing was started there (tail's own words name only a file).
    const std::string log = path(s, "log/master.log");
    return fmt::format("[ -e {0} ] || {{ echo \"no master log at \"{0}\": nothing was started "
                       "there (ci-deploy start)\" >&2; exit 3; }}\n"
                       "exec tail -n {1}{2} {0}\n",
                       log,
                       lines,
                       follow ? " -F" : "");
}

std::string prune_script(const Settings& s) {
    if (is_container(s)) {
        return fmt::format("{} image prune -f >/dev/null\n", engine(s));
    }
    return fmt::format("cd {} || exit 0\n"
                       "keep1=$(basename \"$(readlink ../current)\")\n"
                       "keep2=$(basename \"$(readlink ../previous 2>/dev/null)\" 2>/dev/null)\n"
                       "for r in *; do\n"
                       "  [ \"$r\" = \"$keep1\" ] || [ \"$r\" = \"$keep2\" ] || rm -rf \"./$r\"\n"
                       "done\n",
                       path(s, "releases"));
}

WaitDecision decide_wait(std::size_t running_builds,
                         std::chrono::seconds waited,
                         std::chrono::seconds timeout,
                         bool force) {
    if (running_builds == 0) {
        return WaitDecision::Proceed;
    }
    if (force) {
        return WaitDecision::Forced;
    }
    return waited < timeout ? WaitDecision::Wait : WaitDecision::Refuse;
}

HealthDecision decide_health(std::optional<int> status,
                             std::chrono::seconds waited,
                             std::chrono::seconds timeout) {
    if (status == 200) {
        return HealthDecision::Healthy;
    }
    return waited < timeout ? HealthDecision::Wait : HealthDecision::Unhealthy;
}

int exit_code(Outcome outcome) {
    switch (outcome) {
    case Outcome::Done:
        return 0;
    case Outcome::Refused:
        return 1;
    case Outcome::RolledBack:
        return 2;
    case Outcome::Unreachable:
        return 3;
    }
    return 1;
}

std::string format_duration(std::chrono::seconds duration) {
    const auto total = std::max<std::int64_t>(0, duration.count());
    const auto hours = total / 3600;
    const auto minutes = total % 3600 / 60;
    const auto seconds = total % 60;
    if (hours > 0) {
        return fmt::format("{}h{}m{}s", hours, minutes, seconds);
    }
    if (minutes > 0) {
        return fmt::format("{}m{}s", minutes, seconds);
    }
    return fmt::format("{}s", seconds);
}

std::string countdown_line(const std::vector<std::int64_t>& build_ids, std::chrono::seconds left) {
    return fmt::format("waiting for {} running build{} ({}): {} left (--force skips the wait)",
                       build_ids.size(),
                       build_ids.size() == 1 ? "" : "s",
                       fmt::join(build_ids, ", "),
                       format_duration(left));
}

std::string announce_before(std::string_view host, std::string_view from, std::string_view to) {
    return fmt::format("Updating the libci master on {} from {} to {}: it restarts now.",
                       host,
                       from.empty() ? "(not running)" : from,
                       to);
}

std::string announce_done(std::string_view host, std::string_view version) {
    return fmt::format("The libci master on {} is updated and healthy: {}.", host, version);
}

std::string
announce_rolled_back(std::string_view host, std::string_view failed, std::string_view restored) {
    return fmt::format("The update of the libci master on {} failed: {} was not healthy. Rolled "
                       "back to {}.",
                       host,
                       failed,
                       restored);
}

} // namespace ci::deploy
