#pragma once

/// \file
/// The master's configuration as typed values: what `config.yml` says once it has been checked.
///
/// The YAML keys are those of the Buildbot deployment libci replaces (`auth`, `buildmaster`,
/// `github`, `zulip`, `aws`, `slaves`, `failing_builders`), plus what that deployment wrote in
/// Python (`repositories`, `locks`, `builders`, `schedulers`). docs/config.md documents every key
/// with its type, default and an example; the field comments below name the YAML key they hold.
/// Every default below is the documented default: a Config built by hand and one loaded from an
/// empty file are equal.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <ci/core/error.h>

namespace ci::config {

/// Durations in the file are "30s", "5m", "2h", "1h30m" or a bare number of seconds.
using Duration = std::chrono::seconds;

/// One of `auth.users`: a login and the hash of its password (`ci-master hash-password`).
struct AuthUser {
    std::string user; ///< `user`: 1 to 64 printable characters, no ':' (HTTP basic's separator)
    /// `password_hash`: a PHC string that ci::crypto::parse_password_hash accepts (checked when
    /// the config is read; a secret: it never reaches a log).
    std::string password_hash;
    friend bool operator==(const AuthUser&, const AuthUser&) = default;
};

/// `auth.view`: who may look at the web UI's pages and the read API.
enum class AuthView {
    Anonymous, ///< `anonymous` (the default): anyone; actions still need a login
    Login,     ///< `login`: only a logged-in user (session cookie) or HTTP basic
};

/// `auth`: the users of the web UI's actions (force, stop, cancel) and of the REST API's write
/// operations: the old single `user`/`password` (a plain password, accepted with a warning),
/// `users` with password hashes, or both.
struct Auth {
    std::string user;            ///< `auth.user` (empty when absent; then `users` is required)
    std::string password;        ///< `auth.password` (plain; a secret; required with `user`)
    std::vector<AuthUser> users; ///< `auth.users`
    AuthView view = AuthView::Anonymous; ///< `auth.view`
    friend bool operator==(const Auth&, const Auth&) = default;
};

/// `buildmaster.tls`: TLS on the worker port (docs/api.md). `true` (the default) or a mapping
/// turns it on, `false` turns it off (workers then need `ci-worker start --insecure`).
struct WorkerTls {
    bool enabled = true; ///< false for `buildmaster.tls: false`
    /// `buildmaster.tls.cert`: the certificate chain (PEM; the master's first). Empty: a
    /// self-signed certificate for `buildmaster.host` that the master creates in its data
    /// directory on first start and keeps.
    std::string cert;
    std::string key; ///< `buildmaster.tls.key`: its private key (PEM; required with cert)
    friend bool operator==(const WorkerTls&, const WorkerTls&) = default;
};

/// `buildmaster`: where the master runs and what it listens on.
/// `buildmaster.limits`: what clients of the master's two ports may make it hold (docs/api.md,
/// "Limits"). The defaults are the values the table there gives.
struct Limits {
    int http_connections = 1024;              ///< HTTP connections open at once
    int http_connections_per_address = 128;   ///< ... from one address (IPv6: its /64)
    int worker_connections = 2048;            ///< worker port connections open at once
    int worker_connections_per_address = 256; ///< ... from one address (IPv6: its /64)
    int http_header_bytes = 16 * 1024;        ///< a request's header (request line and fields)
    int body_memory_bytes = 64 * 1024 * 1024; ///< request bodies held at once, all together
    Duration idle_timeout{75};                ///< a new connection's first byte, keep-alive waits
    Duration header_timeout{10};              ///< from a request's first byte to its header
    Duration request_timeout{60};             ///< from a request's first byte to its body
    Duration hello_timeout{10};               ///< a worker connection's hello, TLS included
    friend bool operator==(const Limits&, const Limits&) = default;
};

struct Buildmaster {
    std::string host = "localhost";    ///< `buildmaster.host`: the name workers and GitHub reach
    std::string docker_tag = "latest"; ///< `buildmaster.docker_tag`: image tag ci-deploy runs
    std::uint16_t web_port = 8010;     ///< `buildmaster.web_port`: HTTP (UI, API, webhooks)
    std::uint16_t worker_port = 9989;  ///< `buildmaster.worker_port`: worker connections
    /// `buildmaster.state`: the state database, a SQLite file path (relative to the master's
    /// working directory).
    std::string state = "state.sqlite";
    /// `buildmaster.url`: the base URL of the master's web service as users reach it (links in
    /// commit statuses); empty means "http://HOST:WEB_PORT/".
    std::string url;
    /// `buildmaster.max_retries`: how many times a build request is queued again after its build
    /// ended `retry` (its worker was lost, the master restarted); the build after that ends
    /// `exception` instead of `retry`, and the request is completed.
    int max_retries = 3;
    /// `buildmaster.web_hosts`: more names the web port is served as (a reverse proxy's name, a
    /// DNS alias): a request whose Host header names none of these, `host`, `url`'s host or
    /// `localhost` (and is not an IP address) is refused with 421 (DNS rebinding).
    std::vector<std::string> web_hosts;
    /// `buildmaster.max_upload_size`: the most bytes a build may upload (all its upload steps
    /// together); a number of bytes, or a string such as "2GiB", "500MiB", "10KiB".
    std::uint64_t max_upload_size = std::uint64_t{2} * 1024 * 1024 * 1024;
    /// `buildmaster.results_retention`: how long a build's results (DATA_DIR/results/BUILDER/
    /// BRANCH/BUILD) are kept, counted from the BUILD directory's modification time; the master
    /// deletes older ones when it starts, then hourly. 0 (`0` or `never`): kept forever.
    Duration results_retention{14 * 86400};
    WorkerTls tls; ///< `buildmaster.tls`
    Limits limits; ///< `buildmaster.limits`
    /// `buildmaster.trusted_proxies`: reverse proxies (IP addresses or ADDRESS/PREFIX networks,
    /// as written) whose X-Forwarded-For names the client of a request they pass on.
    std::vector<std::string> trusted_proxies;
    friend bool operator==(const Buildmaster&, const Buildmaster&) = default;
};

/// `github`: commit-status reporting and webhook verification.
struct Github {
    std::string token;          ///< `github.token`: API token (a secret); empty disables the API
    bool report_status = false; ///< `github.report_status`: post commit statuses (false on staging)
    /// `github.webhook_secret`: when set, every webhook must carry a valid X-Hub-Signature-256.
    std::string webhook_secret;
    /// `github.api_url`: the REST API's base URL (GitHub Enterprise: "https://HOST/api/v3").
    std::string api_url = "https://api.github.com";
    /// `github.context_prefix`: put before a builder's name to make its status context.
    std::string context_prefix = "libci/";
    /// `github.strip_prefix`: removed from the start of a builder's name first (the old
    /// deployment's "flocker-").
    std::string strip_prefix;
    /// `github.builders`: globs of the builders whose statuses are reported; empty means all.
    std::vector<std::string> builders;
    /// `github.give_up`: a status not accepted by GitHub this long after its event is dropped
    /// (and logged).
    Duration give_up{6 * 3600};
    friend bool operator==(const Github&, const Github&) = default;
};

/// `zulip`: chat notifications of build results.
struct Zulip {
    std::string user;     ///< `zulip.user` (required): the bot's e-mail address
    std::string password; ///< `zulip.password` (required; a secret): the bot's API key
    std::string stream;   ///< `zulip.stream` (required): where every result goes
    /// `zulip.critical_stream`: where failures of the default branch also go; null disables.
    std::optional<std::string> critical_stream;
    /// `zulip.ops_stream`: where operational errors go (a reporter giving up, the store
    /// degraded, an instance that failed to terminate); null disables.
    std::optional<std::string> ops_stream;
    /// `zulip.site`: the Zulip server's base URL (messages go to SITE/api/v1/messages).
    std::string site = "https://api.zulip.com";
    /// `zulip.give_up`: a message not accepted this long after it was queued is dropped.
    Duration give_up{6 * 3600};
    friend bool operator==(const Zulip&, const Zulip&) = default;
};

/// `aws`: credentials and image selection for EC2 latent workers.
struct Aws {
    /// `aws.identifier`: access key id; empty means the AWS CLI's chain (environment, profile,
    /// instance role).
    std::string identifier;
    std::string secret_identifier;    ///< `aws.secret_identifier`: secret access key (a secret)
    std::string region = "us-west-2"; ///< `aws.region`: where workers are launched
    /// `aws.image_tags`: tags an AMI must carry to be used. Missing from the file means
    /// {production: "true"}; null or {} means no filter (the newest image of that name).
    std::map<std::string, std::string> image_tags{{"production", "true"}};
    /// `aws.endpoint_url`: where EC2 is reached (a VPC endpoint; moto in tests). Empty: the
    /// environment's AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL, else AWS's own for the region
    /// (see ec2_endpoint_url).
    std::string endpoint_url;
    friend bool operator==(const Aws&, const Aws&) = default;
};

/// A worker class of EC2 latent workers (`slaves.<class>` with `ami`): the master starts
/// instances when builds wait and stops them when idle.
struct Ec2Workers {
    std::string ami; ///< `ami` (required): the image's Name (newest match is used)
    int count = 1;   ///< `slaves`: at most this many instances at once
    std::string instance_type = "c3.large"; ///< `instance_type`
    int max_builds = 1;                     ///< `max_builds`: builds at once on one instance
    /// `max_spot_price`: USD per hour; present means spot instances, absent means on-demand.
    std::optional<double> max_spot_price;
    std::string distribution; ///< `distribution`: informational (e.g. "centos-7")
    /// `user_data_template`: a cloud-init template file (ci/config/user_data.h), relative to
    /// the config file's directory (load_config makes it so; the JSON form holds it as
    /// resolved). Empty: the default template (share/user-data/worker.cloud-config).
    std::string user_data_template;
    /// `unreachable_timeout`: the default template's watchdog powers the instance off when the
    /// master's worker port has been unreachable this long (`{{unreachable_timeout}}`).
    Duration unreachable_timeout{1800};
    std::string key_name; ///< `key_name`: the EC2 key pair for SSH; empty: none
    /// `security_groups`: security group ids (sg-...); empty: the subnet's default.
    std::vector<std::string> security_groups;
    std::string subnet_id;            ///< `subnet_id`: empty: the default VPC's
    std::string iam_instance_profile; ///< `iam_instance_profile`: a name or an ARN; empty: none
    /// `tags`: extra tags on each instance (beside Name, ci:master, ci:class, ci:worker).
    std::map<std::string, std::string> tags;
    std::string region; ///< `region`: empty means `aws.region`
    /// `missing_timeout`: an instance whose worker has not connected this long after launch (or
    /// since its connection dropped) is terminated.
    Duration missing_timeout{1200};
    /// `build_wait_timeout`: an instance whose worker has had no build this long is idle and
    /// ends as `idle_action` says.
    Duration build_wait_timeout{3000};
    /// `max_lifetime`: an instance older than this takes no new builds and ends when idle;
    /// absent: no limit.
    std::optional<Duration> max_lifetime;
    /// `spot_fallback`: when a spot launch fails for lack of capacity or a spot error, launch
    /// on-demand instead (opt-in: it costs more).
    bool spot_fallback = false;
    /// `idle_action`: what ends an idle instance.
    enum class IdleAction : std::uint8_t {
        Terminate, ///< `terminate` (the default)
        Stop,      ///< `stop`: kept stopped (its disk stays) and started again when needed
    };
    IdleAction idle_action = IdleAction::Terminate;
    int stopped_max = 0; ///< `stopped_max`: at most this many stopped instances kept (stop)
    /// `worker_files`: DEST -> SOURCE, files the master sends each worker of the class after
    /// its login, before any build (ci/config/worker_files.h). SOURCE is a file on the master
    /// (load_config makes a relative one relative to the config file's directory).
    std::map<std::string, std::string> worker_files;
    friend bool operator==(const Ec2Workers&, const Ec2Workers&) = default;
};

/// The EC2 endpoint URL for `aws`: `aws.endpoint_url`, else the environment's
/// AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL (the AWS SDKs' convention); empty means AWS's
/// own endpoint for the region.
[[nodiscard]] std::string ec2_endpoint_url(const Aws& aws);

/// A worker class of static workers (`slaves.<class>` with `passwords`): one worker per password,
/// named `<class>/<i>`, that connects to the master by itself.
struct StaticWorkers {
    std::vector<std::string> passwords; ///< `passwords` (required, not empty; secrets)
    int max_builds = 1;                 ///< `max_builds`: builds at once on one worker
    std::string distribution;           ///< `distribution`: informational
    /// `worker_files`: as Ec2Workers::worker_files.
    std::map<std::string, std::string> worker_files;
    friend bool operator==(const StaticWorkers&, const StaticWorkers&) = default;
};

/// A worker class run inside the master process (`slaves.<class>` with `local: true`): the
/// embedded default that needs no other machine.
struct LocalWorkers {
    int count = 1;      ///< `slaves`: how many in-process workers
    int max_builds = 1; ///< `max_builds`: builds at once on one worker
    /// `step_user`: the user steps run as (the master must be root); empty: the master's own.
    std::string step_user;
    friend bool operator==(const LocalWorkers&, const LocalWorkers&) = default;
};

/// One `slaves.<class>` entry. Classes libci cannot run (Rackspace's `openstack-image`) are
/// dropped with a warning when the file is loaded, so they never appear here.
using WorkerClass = std::variant<Ec2Workers, StaticWorkers, LocalWorkers>;

/// `repositories.<name>`: a Git repository that builds check out.
struct Repository {
    std::string url;                       ///< `url` (required): what `git clone` accepts
    std::string default_branch = "master"; ///< `default_branch`: the usual merge target
    /// `poll_interval`: poll the remote's refs this often (for masters that get no webhooks,
    /// such as staging); absent means webhooks only.
    std::optional<Duration> poll_interval;
    /// `github`: "OWNER/REPO" where `url` is not GitHub's (a mirror, a test); empty means taken
    /// from `url` (see github_repository).
    std::string github;
    /// `allow_local_submodules`: submodules whose URL is a local path or file:// may be checked
    /// out (git::CheckoutOptions::allow_local_submodules). Not used yet: builds do not check
    /// out submodules.
    bool allow_local_submodules = false;
    friend bool operator==(const Repository&, const Repository&) = default;
};

/// The "OWNER/REPO" that commit statuses of `repository` go to: its `github` key when set, else
/// parsed from a GitHub URL of its `url` ("https://github.com/OWNER/REPO.git",
/// "git@github.com:OWNER/REPO.git", "ssh://git@github.com/OWNER/REPO", any case of the host,
/// with or without ".git" and a trailing slash). Empty when neither gives one.
[[nodiscard]] std::string github_repository(const Repository& repository);

/// True when `text` has the form "OWNER/REPO" (letters, digits, '-', '_' and '.').
[[nodiscard]] bool is_github_repository_name(std::string_view text);

/// `locks.<name>`: a counting lock; builders that name it run at most `max_count` at once.
struct Lock {
    /// `scope`: where `max_count` is counted.
    enum class Scope {
        Master, ///< `master`: across every worker
        Worker, ///< `worker`: on each worker apart (one functional test run per worker)
    };
    int max_count = 1;           ///< `max_count`
    Scope scope = Scope::Master; ///< `scope`
    friend bool operator==(const Lock&, const Lock&) = default;
};

/// The old deployment's rule for tags (and branch names) that are releases: MAJOR.MINOR.MICRO,
/// optionally followed by one of devN, .devN, preN, rcN, +docN and .postN. 1.2.3, 1.2.3.dev1,
/// 1.2.3dev1, 1.2.3pre1, 1.2.3rc1, 1.2.3+doc1 and 1.2.3.post1 match; 1.2, v1.2.3 and
/// 1.2.3+1.gf661a6a do not. An ECMAScript regular expression: the default `tags` pattern of a
/// branch scheduler and the merge-forward rule's test for a release (git::merge_target_for).
inline constexpr std::string_view release_tag_regex =
    R"(^[0-9]+\.[0-9]+\.[0-9]+(\.?dev[0-9]+|pre[0-9]+|rc[0-9]+|\+doc[0-9]+|\.post[0-9]+)?$)";

/// True when `name` matches release_tag_regex. Pure; thread-safe.
[[nodiscard]] bool is_release_tag(std::string_view name);

/// What a builder's checkout merges into the branch before the steps run.
struct MergeTarget {
    enum class Mode {
        Auto,   ///< `auto`: the rules (master, release/* and version tags: no merge; ...)
        None,   ///< `none`: build the branch as pushed
        Branch, ///< any other value: always merge this branch
    };
    Mode mode = Mode::Auto;
    std::string branch; ///< set when mode is Branch
    friend bool operator==(const MergeTarget&, const MergeTarget&) = default;
};

/// A step's `trigger`: build requests for other builders, of the same repository, branch and
/// revision, merged with the same merge target commit as the triggering build (pinned).
struct Trigger {
    std::vector<std::string>
        builders;      ///< `builders` (required): builders of a triggerable scheduler
    bool wait = false; ///< `wait`: the step waits for their builds and takes the worst result
    friend bool operator==(const Trigger&, const Trigger&) = default;
};

/// A step's `upload`: files sent from the worker to the master over the worker connection.
struct Upload {
    /// `from` (required): a file or directory, relative to the checkout (no "..").
    std::string from;
    /// `to` (required): the NAME under the build's results directory (one or more segments,
    /// see build::check_relative_path), or "s3://bucket/prefix" (accepted, not used yet).
    std::string to;
    friend bool operator==(const Upload&, const Upload&) = default;
};

/// One `builders.<name>.steps[i]`: a command run in the checkout, a trigger, or an upload.
struct Step {
    std::string name; ///< `name` (required): shown in the UI and the logs
    /// `run` (required unless `trigger`): a list is the argv, run as is; a string is a shell
    /// command, stored as {"/bin/sh", "-c", text}. Empty for a trigger step.
    std::vector<std::string> command;
    /// `trigger` (instead of `run`): the step triggers builds instead of running a command.
    std::optional<Trigger> trigger;
    /// `upload` (instead of `run`): the step sends files to the master.
    std::optional<Upload> upload;
    /// `after_upload` (upload steps): run by the master in the uploaded directory once it has
    /// arrived whole; a string is a shell command ({"/bin/sh", "-c", text}). Empty: none.
    std::vector<std::string> after_upload;
    std::map<std::string, std::string> env; ///< `env`: added to the worker's environment
    std::string workdir;             ///< `workdir`: relative to the checkout; empty means its root
    std::optional<Duration> timeout; ///< `timeout`: absent means the builder's timeout only
    Duration grace{10}; ///< `grace`: between SIGTERM and SIGKILL when the step is stopped
    /// `halt_on_failure`: a failure ends the build (default: true, false when
    /// flunk_on_failure is false).
    bool halt_on_failure = true;
    /// `always_run`: the step runs even after an earlier step ended the build (a failure with
    /// halt_on_failure, or the build's timeout): cleanup steps.
    bool always_run = false;
    /// `flunk_on_failure`: a failure of this step makes the build `failure`.
    bool flunk_on_failure = true;
    /// `warn_on_failure`: a failure of this step makes the build `warnings` (when
    /// flunk_on_failure is false; with both false its failure does not change the result).
    bool warn_on_failure = false;
    /// `inactivity_timeout`: the step is stopped after this long without output; zero: never.
    Duration inactivity_timeout{1200};
    /// `set_property`: the build property set to the step's trimmed standard output; empty:
    /// none.
    std::string set_property;
    /// `test_results`: a glob (relative to the step's workdir) of JUnit XML files read once
    /// the step ends; empty: none.
    std::string test_results;
    /// `logfiles`: extra logs of the step, name -> a file (relative to the step's workdir)
    /// followed while the step runs.
    std::map<std::string, std::string> logfiles;
    friend bool operator==(const Step&, const Step&) = default;
};

/// `builders.<name>`: what to build, where, and how.
struct Builder {
    /// `repository`: a `repositories` name; empty: none (no checkout: the steps run in an
    /// empty work directory, e.g. maintenance jobs).
    std::string repository;
    std::vector<std::string> workers; ///< `workers` (required): `slaves` class names
    std::vector<std::string> locks;   ///< `locks`: `locks` names held while the build runs
    MergeTarget merge_target;         ///< `merge_target`: auto (default), none, or a branch
    Duration timeout{3600};           ///< `timeout`: the whole build
    std::vector<Step> steps;          ///< `steps` (required, not empty)
    friend bool operator==(const Builder&, const Builder&) = default;
};

/// `schedulers.<name>`: when builders run.
struct Scheduler {
    enum class Type {
        Branch,      ///< `branch`: on pushes, after the tree-stable wait
        Force,       ///< `force`: on request (UI, API, CLI)
        Periodic,    ///< `periodic`: every `interval`, or daily `at` a UTC time
        Triggerable, ///< `triggerable`: only when a trigger step of another build asks
    };
    Type type = Type::Branch;          ///< `type` (required)
    std::vector<std::string> builders; ///< `builders` (required): `builders` names
    /// `repository`: a `repositories` name; required for branch schedulers, and for periodic
    /// ones unless their builders have no repository.
    std::string repository;
    /// `branches` (branch): glob patterns, or /regular expressions/ between slashes.
    std::vector<std::string> branches{"master", "release/*"};
    /// `tags` (branch): patterns of tag pushes that build; by default release tags
    /// (release_tag_regex between slashes).
    std::vector<std::string> tags{"/" + std::string(release_tag_regex) + "/"};
    /// `important_files` (branch): globs; a change touching none of them never starts a wait.
    /// Empty means every file is important.
    std::vector<std::string> important_files;
    Duration tree_stable_timer{5}; ///< `tree_stable_timer` (branch): quiet time before building
    /// `max_wait` (branch): a wait never lasts longer than this after its first change.
    Duration max_wait{600};
    bool collapse_requests = false;   ///< `collapse_requests`: merge pending requests of a branch
    std::optional<Duration> interval; ///< `interval` (periodic)
    std::string at;                   ///< `at` (periodic): "HH:MM", UTC, daily
    std::string branch;               ///< `branch` (periodic): default: the repository's default
    friend bool operator==(const Scheduler&, const Scheduler&) = default;
};

/// `deploy`: where and how `ci-deploy` runs the master. Only ci-deploy reads it; the master
/// ignores it.
struct Deploy {
    /// How the master runs on the target.
    enum class Runtime {
        Docker,  ///< `docker`: a container of `image`:`buildmaster.docker_tag`
        Podman,  ///< `podman`: the same with podman
        Process, ///< `process`: `binary` run by a small supervisor script (pidfile, log, restarts)
    };
    /// `deploy.target`: "ssh://USER@HOST[:PORT]" or "local"; empty means
    /// "ssh://root@<buildmaster.host>" (see deploy_target()).
    std::string target;
    Runtime runtime = Runtime::Docker; ///< `deploy.runtime`
    /// `deploy.image`: the master's image without its tag (the tag is `buildmaster.docker_tag`);
    /// required for docker and podman.
    std::string image;
    std::string data_dir = "/srv/libci"; ///< `deploy.data_dir`: the master's files on the target
    /// `deploy.binary`: the ci-master to install (runtime `process`; required there), a path on
    /// the machine that runs ci-deploy.
    std::string binary;
    friend bool operator==(const Deploy&, const Deploy&) = default;
};

/// Where `deploy.target` points.
struct DeployTarget {
    bool local = false;     ///< "local": this machine, no ssh
    std::string user;       ///< ssh: the login
    std::string host;       ///< ssh: a host name, an IPv4 address or a bracketed IPv6 address
    std::uint16_t port = 0; ///< ssh: the port; 0 means ssh's default (22 or the ssh config's)
    friend bool operator==(const DeployTarget&, const DeployTarget&) = default;
};

/// Parses a `deploy.target`: "local", or "ssh://USER@HOST[:PORT]"; an empty `text` means
/// "ssh://root@<default_host>". USER is letters, digits, '.', '_' and '-'; HOST letters,
/// digits, '.', '-' (or "[IPv6]"); neither may start with '-' (it would be an ssh option).
/// Fails with InvalidArgument saying what is wrong.
[[nodiscard]] Result<DeployTarget> parse_deploy_target(std::string_view text,
                                                       std::string_view default_host);

/// The text of a runtime: "docker", "podman" or "process".
[[nodiscard]] std::string_view to_string(Deploy::Runtime runtime);

/// The whole configuration.
struct Config {
    std::optional<Auth> auth;                  ///< `auth`: absent means the web UI is read-only
    Buildmaster buildmaster;                   ///< `buildmaster`
    Github github;                             ///< `github`
    std::optional<Zulip> zulip;                ///< `zulip`: absent means no chat notifications
    Aws aws;                                   ///< `aws`
    std::map<std::string, WorkerClass> slaves; ///< `slaves`: worker classes by name
    /// `failing_builders`: builders known to fail; their results never mark a branch red.
    std::vector<std::string> failing_builders;
    std::map<std::string, Repository> repositories; ///< `repositories`
    std::map<std::string, Lock> locks;              ///< `locks`
    std::map<std::string, Builder> builders;        ///< `builders`
    std::map<std::string, Scheduler> schedulers;    ///< `schedulers`
    Deploy deploy;                                  ///< `deploy`: used by ci-deploy only
    friend bool operator==(const Config&, const Config&) = default;
};

/// Every secret value in `config` (passwords, tokens, keys), for ci::log::add_secret so that no
/// log line shows them.
[[nodiscard]] std::vector<std::string> secrets(const Config& config);

} // namespace ci::config
