#include <array>
#include <cstdio>
#include <optional>
#include <thread>
#include <unistd.h>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <ci/config/load.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>
#include <ci/core/process.h>
#include <ci/deploy/deployer.h>
#include <ci/http/client.h>
#include <ci/report/zulip.h>

#include "core/json.h"

namespace ci::deploy {

namespace {

using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

class TerminalProgress final : public Progress {
public:
    TerminalProgress() : terminal_(::isatty(STDOUT_FILENO) != 0) {}
    ~TerminalProgress() override { end_countdown(); }
    TerminalProgress(const TerminalProgress&) = delete;
    TerminalProgress& operator=(const TerminalProgress&) = delete;

    void phase(std::string_view line) override {
        end_countdown();
        std::fprintf(stdout, "%.*s\n", static_cast<int>(line.size()), line.data());
        std::fflush(stdout);
    }
    void countdown(std::string_view line) override {
        if (terminal_) {
            // In place: back to the line's start, clear it, write the new one.
            std::fprintf(stdout, "\r\033[K%.*s", static_cast<int>(line.size()), line.data());
            std::fflush(stdout);
            in_countdown_ = true;
        } else if (!in_countdown_) {
            std::fprintf(stdout, "%.*s\n", static_cast<int>(line.size()), line.data());
            std::fflush(stdout);
            in_countdown_ = true;
        }
    }
    void problem(std::string_view line) override {
        end_countdown();
        std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    }
    void output(std::string_view text) override {
        end_countdown();
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
    }

private:
    void end_countdown() {
        if (in_countdown_ && terminal_) {
            std::fputc('\n', stdout);
        }
        in_countdown_ = false;
    }
    bool terminal_;
    bool in_countdown_ = false;
};

// What a script did.
struct Ran {
    int status = 0;
    std::string out;
    std::string err;
    [[nodiscard]] bool ok() const { return status == 0; }
    // What it said, for a message: its error output, else its output, trimmed.
    [[nodiscard]] std::string said() const {
        std::string text = err.empty() ? out : err;
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) {
            text.pop_back();
        }
        return text;
    }
};

// The base URL of the master's API, split for http::Request.
struct Base {
    std::string scheme;
    std::string host;
    std::string prefix; // without a trailing '/'
    [[nodiscard]] std::string text() const {
        return fmt::format("{}://{}{}", scheme, host, prefix);
    }
};

std::optional<Base> parse_base(std::string_view url) {
    Base base;
    if (url.starts_with("http://")) {
        base.scheme = "http";
        url.remove_prefix(7);
    } else if (url.starts_with("https://")) {
        base.scheme = "https";
        url.remove_prefix(8);
    } else {
        return std::nullopt;
    }
    const auto slash = url.find('/');
    base.host = std::string(url.substr(0, slash));
    if (slash != std::string_view::npos) {
        base.prefix = std::string(url.substr(slash));
    }
    while (!base.prefix.empty() && base.prefix.back() == '/') {
        base.prefix.pop_back();
    }
    if (base.host.empty()) {
        return std::nullopt;
    }
    return base;
}

std::string target_text(const Settings& settings) {
    if (settings.target.local) {
        return "local";
    }
    return fmt::format("ssh://{}@{}{}",
                       settings.target.user,
                       settings.target.host,
                       settings.target.port != 0 ? fmt::format(":{}", settings.target.port) : "");
}

// One command's context: the target, the API and Zulip.
class Session {
public:
    Session(const config::Config& config,
            Settings settings,
            const Options& options,
            Progress& progress)
        : config_(config), settings_(std::move(settings)), options_(options), progress_(progress) {
        http::ClientOptions client_options;
        client_options.connect_timeout = std::chrono::milliseconds(3000);
        client_options.timeout = std::chrono::milliseconds(10000);
        client_options.retry.max_attempts = 1;
        client_ = http::make_client(client_options);
    }

    ~Session() {
        if (drained_) {
            // The command ended with the drained master still running (refused, or failed
            // before it stopped it): it assigns builds again.
            (void)set_drained(*drained_, false);
        }
        if (locked_) {
            (void)run(unlock_script(settings_));
        }
    }
    Session(Session&&) = delete;
    Session(const Session&) = delete;
    Session& operator=(Session&&) = delete;
    Session& operator=(const Session&) = delete;

    // What the target says about its master; with `lock`, after taking the target's deploy
    // lock for a command that changes it (released by the destructor), in the same connection.
    // nullopt (reported) when another ci-deploy holds the lock or the target is out of reach.
    std::optional<RemoteStatus> open(bool lock) {
        std::string script = status_script(settings_);
        if (lock) {
            std::array<char, 256> host{};
            if (::gethostname(host.data(), host.size() - 1) != 0) {
                host[0] = '\0';
            }
            const std::string owner =
                fmt::format("ci-deploy pid {} on {}", ::getpid(), std::string_view(host.data()));
            script = lock_script(settings_, owner) + script;
        }
        auto ran = run(script);
        if (!ran) {
            return std::nullopt;
        }
        if (lock && ran->status == ExitLocked) {
            progress_.problem("refused: " + ran->said());
            return std::nullopt;
        }
        if (!ran->ok()) {
            progress_.problem(fmt::format("error: reading the master's state in {} failed: {}",
                                          settings_.data_dir,
                                          ran->said()));
            return std::nullopt;
        }
        locked_ = lock;
        return parse_status(ran->out);
    }

    const Settings& settings() const { return settings_; }
    Progress& progress() { return progress_; }
    const Options& options() const { return options_; }

    // Runs `script` on the target; nullopt (and a problem reported) when it cannot be reached.
    std::optional<Ran> run(const std::string& script,
                           std::optional<std::string> input = std::nullopt,
                           bool stream = false) {
        ProcessSpec spec;
        spec.argv = command_line(settings_.target, options_.ssh, script);
        spec.stdin_data = std::move(input);
        spec.stop = options_.stop;
        // The scripts start the master's supervisor in the background (setsid ... &): on the
        // local target it must outlive the script, as it does when sshd runs it.
        spec.leave_running = settings_.target.local;
        Ran ran;
        spec.on_output = [&](OutputStream which, std::string_view chunk) {
            if (stream && which == OutputStream::Stdout) {
                progress_.output(chunk);
            } else {
                (which == OutputStream::Stdout ? ran.out : ran.err).append(chunk);
            }
        };
        auto result = run_process(spec);
        if (!result) {
            progress_.problem(fmt::format("error: {}", result.error().message));
            unreachable_ = true;
            return std::nullopt;
        }
        if (result->termination != ProcessResult::Termination::Exited) {
            ran.status = 128 + result->signal;
            return ran;
        }
        ran.status = result->exit_code;
        if (!settings_.target.local && ran.status == ExitSshFailed) {
            progress_.problem(fmt::format("error: cannot reach {}: {}",
                                          target_text(settings_),
                                          ran.said().empty() ? "ssh failed" : ran.said()));
            unreachable_ = true;
            return std::nullopt;
        }
        return ran;
    }

    // Runs `script`, which must succeed: a failure is reported with `what` and its output.
    bool must(const std::string& script,
              std::string_view what,
              std::optional<std::string> input = std::nullopt) {
        auto ran = run(script, std::move(input));
        if (!ran) {
            return false;
        }
        if (!ran->ok()) {
            progress_.problem(fmt::format(
                "error: {} failed (exit status {}): {}", what, ran->status, ran->said()));
            return false;
        }
        return true;
    }

    bool unreachable() const { return unreachable_; }

    std::optional<RemoteStatus> remote_status() {
        auto ran = run(status_script(settings_));
        if (!ran) {
            return std::nullopt;
        }
        return parse_status(ran->out);
    }

    // The API's base URL, or nullopt when its port is not known yet.
    std::optional<Base> api(const RemoteStatus& status) const {
        if (!options_.api_url.empty()) {
            return parse_base(options_.api_url);
        }
        const std::uint16_t port =
            settings_.web_port != 0 ? settings_.web_port : status.web_port.value_or(0);
        if (port == 0) {
            return std::nullopt;
        }
        std::string host = settings_.target.local ? "127.0.0.1" : settings_.target.host;
        if (host.find(':') != std::string::npos) {
            host = "[" + host + "]";
        }
        return Base{"http", fmt::format("{}:{}", host, port), ""};
    }

    Result<http::Response> get(const Base& base, std::string_view path, std::string query = {}) {
        http::Request request;
        request.scheme = base.scheme;
        request.host = base.host;
        request.path = base.prefix + std::string(path);
        request.query = std::move(query);
        return client_->send(request);
    }

    // /healthz's status, or nullopt when nothing answered.
    std::optional<int> health(const Base& base) {
        auto response = get(base, "/healthz");
        if (!response) {
            return std::nullopt;
        }
        return response->status;
    }

    // The ids of the running builds.
    Result<std::vector<std::int64_t>> running_builds(const Base& base) {
        auto response = get(base, "/api/v1/builds", "running=1&limit=1000");
        if (!response) {
            return fail(response.error());
        }
        if (response->status != 200) {
            return fail(ErrorCode::Transport,
                        fmt::format("GET {}/api/v1/builds?running=1: HTTP {}",
                                    base.text(),
                                    response->status));
        }
        auto document = json::parse_object(response->body);
        if (!document) {
            return fail(document.error());
        }
        std::vector<std::int64_t> ids;
        const auto builds = document->FindMember("builds");
        if (builds != document->MemberEnd() && builds->value.IsArray()) {
            for (const auto& build : builds->value.GetArray()) {
                if (build.IsObject() && build.HasMember("id") && build["id"].IsInt64()) {
                    // `running=1` lists running builds; keep to them in case a master ignores it.
                    const std::string result = json::text_or_empty(build, "result");
                    if (result.empty() || result == "running") {
                        ids.push_back(build["id"].GetInt64());
                    }
                }
            }
        }
        return ids;
    }

    // "name (N builds)" of each connected worker.
    Result<std::vector<std::string>> connected_workers(const Base& base) {
        auto response = get(base, "/api/v1/workers");
        if (!response) {
            return fail(response.error());
        }
        auto document = json::parse_object(response->body);
        if (!document) {
            return fail(document.error());
        }
        std::vector<std::string> names;
        const auto workers = document->FindMember("workers");
        if (workers != document->MemberEnd() && workers->value.IsArray()) {
            for (const auto& worker : workers->value.GetArray()) {
                if (!worker.IsObject() || !worker.HasMember("connected") ||
                    !worker["connected"].IsBool() || !worker["connected"].GetBool()) {
                    continue;
                }
                const auto builds = worker.FindMember("builds");
                const std::size_t count = builds != worker.MemberEnd() && builds->value.IsArray()
                                              ? builds->value.Size()
                                              : 0;
                names.push_back(fmt::format("{} ({} build{})",
                                            json::text_or_empty(worker, "name"),
                                            count,
                                            count == 1 ? "" : "s"));
            }
        }
        return names;
    }

    // POST /api/v1/master/drain or /undrain with the config's auth.
    Status set_drained(const Base& base, bool drained) {
        if (!config_.auth) {
            return fail(ErrorCode::InvalidArgument,
                        "the config has no auth section, and without it the API is read-only");
        }
        http::Request request;
        request.method = "POST";
        request.scheme = base.scheme;
        request.host = base.host;
        request.path = base.prefix + (drained ? "/api/v1/master/drain" : "/api/v1/master/undrain");
        request.headers.emplace_back(
            "Authorization",
            "Basic " + crypto::base64_encode(config_.auth->user + ":" + config_.auth->password));
        auto response = client_->send(request);
        if (!response) {
            return fail(response.error());
        }
        if (response->status != 200) {
            return fail(
                ErrorCode::Transport,
                fmt::format("POST {}{}: HTTP {}", base.text(), request.path, response->status));
        }
        return {};
    }

    // Drains the running master: from now on it starts no new build, so none can start between
    // the wait for running builds and the stop. A master that cannot be drained (an older one
    // without the route, another password) is waited for as before, with a warning.
    void drain(const Base& base) {
        if (auto drained = set_drained(base, true); !drained) {
            progress_.problem(fmt::format("warning: cannot drain the master ({}): a build may "
                                          "still start before it stops",
                                          log::redact(drained.error().message)));
            return;
        }
        drained_ = base;
        progress_.phase("drained: the master starts no new build (requests stay queued)");
    }

    // The master was stopped: nothing is left to undrain.
    void stopped() { drained_.reset(); }

    // Drains the master, then waits for its running builds before it is interrupted; nullopt
    // to go on, else the outcome to return (the destructor undrains a master left running).
    std::optional<Outcome> wait_for_builds(const RemoteStatus& status) {
        if (!status.running) {
            return std::nullopt;
        }
        const auto base = api(status);
        if (base) {
            drain(*base);
        }
        const auto started = Clock::now();
        bool counted = false;
        while (true) {
            Result<std::vector<std::int64_t>> ids =
                base ? running_builds(*base)
                     : Result<std::vector<std::int64_t>>(fail(
                           ErrorCode::NotFound, "the master's web port is not known (--api URL)"));
            if (!ids) {
                if (options_.force) {
                    progress_.phase(fmt::format(
                        "cannot ask the master for running builds ({}); --force: going on",
                        ids.error().message));
                    return std::nullopt;
                }
                progress_.problem(fmt::format("error: cannot ask the master for running builds: "
                                              "{} (--api URL names the API; --force skips the "
                                              "wait)",
                                              ids.error().message));
                return Outcome::Unreachable;
            }
            const auto waited = std::chrono::duration_cast<seconds>(Clock::now() - started);
            switch (decide_wait(ids->size(), waited, options_.timeout, options_.force)) {
            case WaitDecision::Proceed:
                progress_.phase(counted ? "running builds finished" : "no build is running");
                return std::nullopt;
            case WaitDecision::Forced:
                progress_.phase(fmt::format(
                    "--force: not waiting; {} running build{} get{} the master's shutdown grace "
                    "({} s) to finish, then end `retry` and run again",
                    ids->size(),
                    ids->size() == 1 ? "" : "s",
                    ids->size() == 1 ? "s" : "",
                    settings_.shutdown_grace));
                return std::nullopt;
            case WaitDecision::Refuse:
                progress_.problem(
                    fmt::format("refused: {} build{} still running after {} ({}); wait longer "
                                "with --timeout, or --force",
                                ids->size(),
                                ids->size() == 1 ? "" : "s",
                                format_duration(options_.timeout),
                                fmt::join(*ids, ", ")));
                return Outcome::Refused;
            case WaitDecision::Wait:
                progress_.countdown(countdown_line(*ids, options_.timeout - waited));
                counted = true;
                std::this_thread::sleep_for(options_.poll_interval);
                break;
            }
        }
    }

    // Waits until /healthz answers 200. True when healthy.
    bool wait_healthy() {
        const auto started = Clock::now();
        std::optional<int> last;
        while (true) {
            std::optional<Base> base;
            if (!options_.api_url.empty() || settings_.web_port != 0) {
                base = api(RemoteStatus{});
            } else if (auto status = remote_status()) {
                base = api(*status);
            } else {
                return false;
            }
            last = base ? health(*base) : std::nullopt;
            const auto waited = std::chrono::duration_cast<seconds>(Clock::now() - started);
            switch (decide_health(last, waited, options_.health_timeout)) {
            case HealthDecision::Healthy:
                progress_.phase(fmt::format(
                    "healthy after {} ({}/healthz)", format_duration(waited), base->text()));
                return true;
            case HealthDecision::Unhealthy:
                progress_.problem(fmt::format("not healthy after {}: {}",
                                              format_duration(options_.health_timeout),
                                              last ? fmt::format("/healthz answered {}", *last)
                                                   : "/healthz did not answer"));
                return false;
            case HealthDecision::Wait:
                progress_.countdown(fmt::format("waiting for /healthz: {} left",
                                                format_duration(options_.health_timeout - waited)));
                std::this_thread::sleep_for(options_.poll_interval);
                break;
            }
        }
    }

    // The master's last log lines, as a problem: why it is not healthy.
    void show_log_tail() {
        if (auto ran = run(logs_script(settings_, 20, false)); ran && !ran->out.empty()) {
            progress_.problem("the master's last log lines:\n" + ran->out);
        }
    }

    // Posts `content` to Zulip (ops_stream, else stream; topic "deploy") when configured.
    void announce(const std::string& content) {
        if (!config_.zulip) {
            return;
        }
        const auto settings = report::zulip::settings_from(config_);
        const report::zulip::Message message{
            settings.ops_stream.value_or(settings.stream), "deploy", content};
        auto request = report::zulip::message_request(message, settings);
        if (!request) {
            progress_.problem("warning: not announced on Zulip: " + request.error().message);
            return;
        }
        auto response = client_->send(*request);
        if (!response) {
            progress_.problem("warning: not announced on Zulip: " +
                              log::redact(response.error().message));
            return;
        }
        const auto verdict = report::zulip::judge(*response);
        if (verdict.kind != report::Verdict::Kind::Sent) {
            progress_.problem(fmt::format(
                "warning: not announced on Zulip: HTTP {} {}", response->status, verdict.why));
            return;
        }
        progress_.phase(fmt::format("announced on Zulip (stream {})", message.stream));
    }

    // Writes the config (0600) on the target.
    bool write_config() {
        progress_.phase(
            fmt::format("writing the config to {}/config.json (mode 0600)", settings_.data_dir));
        return must(write_config_script(settings_), "writing the config", config::to_json(config_));
    }

    // process: installs the supervisor and the binary as a release; returns its id and version.
    // docker: pulls the image; returns its reference twice.
    std::optional<std::pair<std::string, std::string>> install() {
        if (settings_.runtime != config::Deploy::Runtime::Process) {
            const std::string reference = fmt::format("{}:{}", settings_.image, settings_.tag);
            progress_.phase(fmt::format("pulling {}", reference));
            if (!must(pull_script(settings_), "pulling " + reference)) {
                return std::nullopt;
            }
            return std::pair{reference, reference};
        }
        if (!must(install_supervisor_script(settings_),
                  "installing the supervisor",
                  std::string(supervisor_script()))) {
            return std::nullopt;
        }
        auto digest = crypto::sha256_file(settings_.binary);
        if (!digest) {
            progress_.problem(fmt::format(
                "error: deploy.binary {}: {}", settings_.binary, digest.error().message));
            return std::nullopt;
        }
        const std::string id = release_id(crypto::to_hex(*digest));
        auto present = run(has_release_script(settings_, id));
        if (!present) {
            return std::nullopt;
        }
        std::string version_out;
        if (present->ok()) {
            progress_.phase(fmt::format("release {} is installed already", id));
            version_out = present->out;
        } else {
            progress_.phase(fmt::format("installing {} as release {}", settings_.binary, id));
            auto binary = read_file(settings_.binary);
            if (!binary) {
                return std::nullopt;
            }
            auto ran = run(install_release_script(settings_, id), std::move(*binary));
            if (!ran) {
                return std::nullopt;
            }
            if (!ran->ok()) {
                progress_.problem(fmt::format(
                    "error: installing release {} failed: {}", id, ran->out + ran->err));
                return std::nullopt;
            }
            version_out = ran->out;
        }
        std::string version = version_out.substr(0, version_out.find('\n'));
        return std::pair{id, fmt::format("{} [release {}]", version, id)};
    }

private:
    std::optional<std::string> read_file(const std::string& path) {
        std::FILE* file = std::fopen(path.c_str(), "rb");
        if (file == nullptr) {
            progress_.problem(fmt::format("error: deploy.binary {}: cannot read it", path));
            return std::nullopt;
        }
        std::string data;
        std::array<char, 65536> buffer{};
        std::size_t n = 0;
        while ((n = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
            data.append(buffer.data(), n);
        }
        std::fclose(file);
        return data;
    }

    const config::Config& config_;
    Settings settings_;
    const Options& options_;
    Progress& progress_;
    std::unique_ptr<http::Client> client_;
    std::optional<Base> drained_; ///< the API of a master this command drained
    bool unreachable_ = false;
    bool locked_ = false;
};

std::string describe(const RemoteStatus& status) {
    if (status.version.empty()) {
        return status.release.empty() ? "(unknown version)" : status.release;
    }
    return status.release.empty() || status.version.find(status.release) != std::string::npos
               ? status.version
               : fmt::format("{} [release {}]", status.version, status.release);
}

// A session and what the target says about its master; without a session, the exit status
// (the config cannot be deployed, or the target cannot be reached).
struct Opened {
    std::unique_ptr<Session> session;
    RemoteStatus before;
    int exit = 0;
};

Opened open_session(const config::Config& config,
                    const Options& options,
                    Progress& progress,
                    bool changes) {
    Opened opened;
    auto settings = settings_from(config);
    if (!settings) {
        progress.problem("error: " + settings.error().message);
        opened.exit = exit_code(Outcome::Refused);
        return opened;
    }
    progress.phase(fmt::format("target {} (runtime {}, {})",
                               target_text(*settings),
                               config::to_string(settings->runtime),
                               settings->data_dir));
    opened.session = std::make_unique<Session>(config, std::move(*settings), options, progress);
    auto before = opened.session->open(changes);
    if (!before) {
        opened.exit =
            exit_code(opened.session->unreachable() ? Outcome::Unreachable : Outcome::Refused);
        opened.session.reset();
        return opened;
    }
    opened.before = std::move(*before);
    return opened;
}

int fail_exit(const Session& session) {
    return exit_code(session.unreachable() ? Outcome::Unreachable : Outcome::Refused);
}

// stop, then start (the previous release or image with `previous`).
bool stop_and_start(Session& session, bool previous) {
    session.progress().phase("stopping the master");
    if (!session.must(stop_script(session.settings()), "stopping the master")) {
        return false;
    }
    session.stopped();
    session.progress().phase("starting the master");
    return session.must(start_script(session.settings(), previous), "starting the master");
}

} // namespace

std::unique_ptr<Progress> make_terminal_progress() {
    return std::make_unique<TerminalProgress>();
}

int start(const config::Config& config, const Options& options, Progress& progress) {
    auto opened = open_session(config, options, progress, /*changes=*/true);
    if (!opened.session) {
        return opened.exit;
    }
    auto* session = &*opened.session;
    const RemoteStatus* before = &opened.before;
    if (before->running) {
        progress.problem(fmt::format("refused: a master runs already ({}); use update or restart",
                                     describe(*before)));
        return exit_code(Outcome::Refused);
    }
    auto installed = session->install();
    if (!installed || !session->write_config()) {
        return fail_exit(*session);
    }
    if (session->settings().runtime == config::Deploy::Runtime::Process &&
        !session->must(activate_script(session->settings(), installed->first),
                       "activating the release")) {
        return fail_exit(*session);
    }
    progress.phase(fmt::format("starting {}", installed->second));
    if (!session->must(start_script(session->settings()), "starting the master")) {
        return fail_exit(*session);
    }
    if (!session->wait_healthy()) {
        session->show_log_tail();
        return session->unreachable() ? exit_code(Outcome::Unreachable)
                                      : exit_code(Outcome::Refused);
    }
    progress.phase(fmt::format("started: {}", installed->second));
    return exit_code(Outcome::Done);
}

int update(const config::Config& config, const Options& options, Progress& progress) {
    auto opened = open_session(config, options, progress, /*changes=*/true);
    if (!opened.session) {
        return opened.exit;
    }
    auto* session = &*opened.session;
    const RemoteStatus* before = &opened.before;
    const auto& settings = session->settings();
    progress.phase(before->running ? fmt::format("running: {}", describe(*before))
                                   : std::string("no master runs"));
    auto installed = session->install();
    if (!installed) {
        return fail_exit(*session);
    }
    if (auto refused = session->wait_for_builds(*before)) {
        return exit_code(*refused);
    }
    // After the wait: a refused update leaves the running master's config as it was (its
    // supervisor restarts it with that config if it crashes).
    if (!session->write_config()) {
        return fail_exit(*session);
    }
    const std::string host = settings.host;
    const std::string old_version = before->running ? describe(*before) : std::string();
    session->announce(announce_before(host, old_version, installed->second));
    progress.phase(fmt::format("switching to {}", installed->second));
    if (!session->must(activate_script(settings, installed->first), "switching")) {
        return fail_exit(*session);
    }
    const bool started = stop_and_start(*session, false);
    if (started && session->wait_healthy()) {
        (void)session->run(prune_script(settings));
        session->announce(announce_done(host, installed->second));
        progress.phase(fmt::format("updated: {}", installed->second));
        return exit_code(Outcome::Done);
    }
    if (session->unreachable()) {
        return exit_code(Outcome::Unreachable);
    }
    session->show_log_tail();
    const bool has_previous = settings.runtime != config::Deploy::Runtime::Process
                                  ? before->running || !before->release.empty()
                                  : !before->release.empty();
    if (!has_previous) {
        progress.problem(fmt::format("error: {} is not healthy and there is no previous master "
                                     "to go back to",
                                     installed->second));
        return exit_code(Outcome::Refused);
    }
    progress.phase(fmt::format("rolling back to {}", describe(*before)));
    if (!session->must(stop_script(settings), "stopping the new master") ||
        !session->must(rollback_script(settings), "going back to the previous release")) {
        return fail_exit(*session);
    }
    const bool restored =
        session->must(start_script(settings, true), "starting the previous master") &&
        session->wait_healthy();
    session->announce(announce_rolled_back(host, installed->second, describe(*before)));
    progress.problem(fmt::format("rolled back: {} was not healthy; {} runs again{}",
                                 installed->second,
                                 describe(*before),
                                 restored ? " and is healthy" : ", but is NOT healthy either"));
    return exit_code(Outcome::RolledBack);
}

int restart(const config::Config& config, const Options& options, Progress& progress) {
    auto opened = open_session(config, options, progress, /*changes=*/true);
    if (!opened.session) {
        return opened.exit;
    }
    auto* session = &*opened.session;
    const RemoteStatus* before = &opened.before;
    if (before->release.empty() &&
        session->settings().runtime == config::Deploy::Runtime::Process) {
        progress.problem("refused: nothing is installed on the target; use start");
        return exit_code(Outcome::Refused);
    }
    if (auto refused = session->wait_for_builds(*before)) {
        return exit_code(*refused);
    }
    if (!session->write_config()) {
        return fail_exit(*session);
    }
    if (!stop_and_start(*session, false)) {
        return fail_exit(*session);
    }
    if (!session->wait_healthy()) {
        session->show_log_tail();
        return fail_exit(*session);
    }
    progress.phase("restarted");
    return exit_code(Outcome::Done);
}

int stop(const config::Config& config, const Options& options, Progress& progress) {
    auto opened = open_session(config, options, progress, /*changes=*/true);
    if (!opened.session) {
        return opened.exit;
    }
    auto* session = &*opened.session;
    const RemoteStatus* before = &opened.before;
    if (!before->running) {
        progress.phase("no master runs");
        return exit_code(Outcome::Done);
    }
    if (auto refused = session->wait_for_builds(*before)) {
        return exit_code(*refused);
    }
    progress.phase(fmt::format("stopping {}", describe(*before)));
    if (!session->must(stop_script(session->settings()), "stopping the master")) {
        return fail_exit(*session);
    }
    session->stopped();
    progress.phase("stopped");
    return exit_code(Outcome::Done);
}

int status(const config::Config& config, const Options& options, Progress& progress) {
    auto opened = open_session(config, options, progress, /*changes=*/false);
    if (!opened.session) {
        return opened.exit;
    }
    auto* session = &*opened.session;
    const RemoteStatus* remote = &opened.before;
    std::string text;
    if (!remote->running) {
        text += "master:   not running\n";
    } else {
        text += fmt::format(
            "master:   running{}{}\n",
            remote->pid ? fmt::format(", pid {}", *remote->pid) : "",
            remote->uptime_seconds
                ? fmt::format(", up {}", format_duration(seconds(*remote->uptime_seconds)))
                : "");
    }
    text += fmt::format("version:  {}\n", describe(*remote));
    if (!remote->previous.empty() && remote->previous != remote->release) {
        text += fmt::format("previous: release {}\n", remote->previous);
    }
    bool healthy = false;
    if (remote->running) {
        if (auto base = session->api(*remote)) {
            const auto health = session->health(*base);
            healthy = health == 200;
            text += fmt::format("health:   {} ({}/healthz)\n",
                                healthy  ? "ok"
                                : health ? fmt::format("HTTP {}", *health)
                                         : std::string("no answer"),
                                base->text());
            if (auto builds = session->running_builds(*base)) {
                text += fmt::format(
                    "builds:   {} running{}\n",
                    builds->size(),
                    builds->empty() ? "" : fmt::format(" ({})", fmt::join(*builds, ", ")));
            } else {
                text += fmt::format("builds:   unknown ({})\n", builds.error().message);
            }
            if (auto workers = session->connected_workers(*base)) {
                text += fmt::format(
                    "workers:  {} connected{}\n",
                    workers->size(),
                    workers->empty() ? "" : fmt::format(": {}", fmt::join(*workers, ", ")));
            } else {
                text += fmt::format("workers:  unknown ({})\n", workers.error().message);
            }
        } else {
            text += "health:   unknown (the master's web port is not known: --api URL)\n";
        }
    }
    progress.output(text);
    return exit_code(healthy ? Outcome::Done : Outcome::Refused);
}

int logs(const config::Config& config, const Options& options, Progress& progress) {
    auto settings = settings_from(config);
    if (!settings) {
        progress.problem("error: " + settings.error().message);
        return exit_code(Outcome::Refused);
    }
    // No phase lines: the output is the log.
    Session session(config, std::move(*settings), options, progress);
    auto ran = session.run(logs_script(session.settings(), options.log_lines, options.follow),
                           std::nullopt,
                           /*stream=*/true);
    if (!ran) {
        return fail_exit(session);
    }
    if (!ran->ok() && !options.follow) {
        progress.problem(fmt::format("error: reading the log failed: {}", ran->said()));
        return exit_code(Outcome::Refused);
    }
    return exit_code(Outcome::Done);
}

} // namespace ci::deploy
