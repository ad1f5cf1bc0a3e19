#include "config/schema.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <regex>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include <ci/build/results.h>
#include <ci/config/placeholders.h>
#include <ci/config/worker_files.h>
#include <ci/core/password.h>

#include "config/reader.h"
#include "core/ip_network.h"

namespace ci::config::detail {

namespace {

constexpr int max_count = 10000;

// A user of `auth`: what HTTP basic can carry (no ':') and a page can show.
bool valid_auth_user(std::string_view name) {
    return !name.empty() && name.size() <= 64 && name.front() != ' ' && name.back() != ' ' &&
           std::ranges::all_of(name, [](char c) {
               return static_cast<unsigned char>(c) >= 0x20 && c != ':' && c != 0x7f;
           });
}

// An S3 bucket name: 3 to 63 characters of [a-z0-9.-], starting and ending with a letter or
// digit.
bool valid_bucket_name(std::string_view name) {
    const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    return name.size() >= 3 && name.size() <= 63 && alnum(name.front()) && alnum(name.back()) &&
           std::ranges::all_of(name, [&](char c) { return alnum(c) || c == '.' || c == '-'; });
}

// A size: bytes, or a whole number with KiB, MiB, GiB or TiB; 1 byte to 1 TiB.
Result<std::uint64_t> parse_size(std::string_view text) {
    std::uint64_t number = 0;
    std::size_t i = 0;
    constexpr std::uint64_t tib = std::uint64_t{1} << 40;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        number = number * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (number > tib) {
            return fail(ErrorCode::InvalidArgument, "too large");
        }
        ++i;
    }
    if (i == 0) {
        return fail(ErrorCode::InvalidArgument, "no number");
    }
    auto unit = text.substr(i);
    while (unit.starts_with(' ')) {
        unit.remove_prefix(1);
    }
    std::uint64_t scale = 1;
    if (unit == "KiB") {
        scale = std::uint64_t{1} << 10;
    } else if (unit == "MiB") {
        scale = std::uint64_t{1} << 20;
    } else if (unit == "GiB") {
        scale = std::uint64_t{1} << 30;
    } else if (unit == "TiB") {
        scale = tib;
    } else if (!unit.empty() && unit != "B") {
        return fail(ErrorCode::InvalidArgument, "unknown unit");
    }
    if (number == 0 || number > tib / scale) {
        return fail(ErrorCode::InvalidArgument, "out of range");
    }
    return number * scale;
}

// A name listed under another section, remembered with its node so that a dangling reference
// is reported where it is written.
struct Reference {
    std::string name;
    YAML::Node node;
    std::string path;
};

// Reads a list of names and remembers where each one is written.
std::vector<Reference> read_references(Reader& reader, const Fields& fields, std::string_view key) {
    std::vector<Reference> references;
    const Entry* entry = fields.find(key);
    if (entry == nullptr || entry->value.IsNull()) {
        return references;
    }
    const std::string path = fields.path(key);
    if (!entry->value.IsSequence()) {
        // One name instead of a list is a common slip; say what is expected.
        reader.error(entry->value, path, "expected a list of names");
        return references;
    }
    for (std::size_t i = 0; i < entry->value.size(); ++i) {
        const YAML::Node item = entry->value[i];
        const std::string item_path = fmt::format("{}[{}]", path, i);
        if (auto name = reader.string(item, item_path)) {
            references.push_back(Reference{std::move(*name), item, item_path});
        }
    }
    return references;
}

std::vector<std::string> names_of(const std::vector<Reference>& references) {
    std::vector<std::string> names;
    names.reserve(references.size());
    for (const auto& reference : references) {
        names.push_back(reference.name);
    }
    return names;
}

// What docker accepts as a tag.
bool is_image_tag(std::string_view tag) {
    if (tag.empty() || tag.size() > 128 || tag.front() == '.' || tag.front() == '-') {
        return false;
    }
    return std::ranges::all_of(tag, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
    });
}

// A name of buildmaster.web_hosts: a DNS name (letters, digits, '-', '.'), no port or scheme.
bool is_web_host_name(std::string_view name) {
    if (name.empty() || name.size() > 253 || name.front() == '.' || name.front() == '-' ||
        name.find("..") != std::string_view::npos) {
        return false;
    }
    return std::ranges::all_of(name, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '-';
    });
}

// An image name without its tag: lower-case path components separated by '/', an optional
// registry host (with a port) first ("registry.example.org:5000/libci/master").
bool is_image_name(std::string_view image) {
    if (image.empty() || image.size() > 255 || image.front() == '-' || image.front() == '/' ||
        image.back() == '/' || image.find("//") != std::string_view::npos) {
        return false;
    }
    const auto last_slash = image.rfind('/');
    const auto colon = image.find(':');
    // A colon only in the registry part (a port), never after the last '/': that would be a tag.
    if (colon != std::string_view::npos &&
        (last_slash == std::string_view::npos || colon > last_slash)) {
        return false;
    }
    return std::ranges::all_of(image, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-' || c == '/' || c == ':';
    });
}

// A path a deploy puts in shell commands on the target: absolute, plain characters, no "..".
bool is_plain_absolute_path(std::string_view path) {
    if (path.size() < 2 || path.front() != '/' || path.find("/../") != std::string_view::npos ||
        path.ends_with("/..") || path.find("//") != std::string_view::npos) {
        return false;
    }
    return std::ranges::all_of(path, [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-' || c == '/' || c == '+' || c == '@';
    });
}

// A glob, or a /regular expression/ between slashes.
bool is_regex_pattern(std::string_view pattern) {
    return pattern.size() >= 2 && pattern.front() == '/' && pattern.back() == '/';
}

class Checker {
public:
    Checker(const std::string& origin,
            std::vector<Diagnostic>& out,
            const std::filesystem::path* base_directory)
        : reader_(origin, out), base_directory_(base_directory) {}

    std::optional<Config> check(const YAML::Node& root);

private:
    void check_auth(const YAML::Node& node);
    void check_buildmaster(const YAML::Node& node);
    void check_worker_tls(const YAML::Node& node, const std::string& path);
    void check_limits(const YAML::Node& node, const std::string& path);
    void check_github(const YAML::Node& node);
    void check_zulip(const YAML::Node& node);
    void check_aws(const YAML::Node& node);
    void check_ec2_class(Fields& fields, Ec2Workers& out);
    void check_slaves(const YAML::Node& node);
    void check_worker_files(const Fields& fields,
                            const std::string& name,
                            std::map<std::string, std::string>& out);
    void check_worker_class(const std::string& name, const Entry& entry);
    void check_repositories(const YAML::Node& node);
    void check_locks(const YAML::Node& node);
    void check_builders(const YAML::Node& node);
    void check_builder(const std::string& name, const YAML::Node& node);
    std::optional<Step>
    check_step(const std::string& builder, const YAML::Node& node, const std::string& path);
    void check_trigger(const std::string& builder,
                       const Entry& entry,
                       const std::string& path,
                       Trigger& out);
    void check_triggered();
    void check_upload(const Entry& entry, const std::string& path, Upload& out);
    void check_after_upload(Fields& fields, Step& out);
    void check_schedulers(const YAML::Node& node);
    void check_scheduler(const std::string& name, const YAML::Node& node);
    void check_failing_builders(const Entry& entry);
    void check_deploy(const YAML::Node& node);
    void check_http_url(const Fields& fields, std::string_view key, const std::string& url);
    void check_patterns(const Fields& fields,
                        std::string_view key,
                        const std::vector<std::string>& patterns);
    void check_known(const std::vector<Reference>& references,
                     const std::set<std::string>& known,
                     std::string_view section,
                     const std::set<std::string>& unsupported = {});

    Reader reader_;
    // The config file's directory: set when the text is a file's (load_config), whose
    // worker_files sources are then resolved against it and read.
    const std::filesystem::path* base_directory_;
    Config config_;
    // Names defined in each section, including entries that have errors of their own, so that
    // one mistake is not reported again by every reference to it.
    std::set<std::string> worker_classes_;
    std::set<std::string> unsupported_classes_;
    std::set<std::string> repositories_;
    std::set<std::string> locks_;
    std::set<std::string> builders_;
    // Builders that a triggerable scheduler names, and the trigger steps' references to
    // builders (checked once every scheduler is known), with the triggering builder's name.
    std::set<std::string> triggerable_;
    std::vector<std::pair<std::string, Reference>> triggered_;
    // Periodic schedulers without a repository, with their builder references: those builders
    // must have none either (checked once every builder is known).
    std::vector<Reference> repositoryless_builders_;
};

std::optional<Config> Checker::check(const YAML::Node& root) {
    Fields fields(reader_,
                  root,
                  "",
                  {"auth",
                   "buildmaster",
                   "github",
                   "zulip",
                   "manhole",
                   "aws",
                   "rackspace",
                   "slaves",
                   "failing_builders",
                   "repositories",
                   "locks",
                   "builders",
                   "schedulers",
                   "deploy"});
    if (!fields.valid()) {
        return std::nullopt;
    }
    for (const auto* unsupported : {"manhole", "rackspace"}) {
        if (const Entry* entry = fields.find(unsupported)) {
            reader_.warning(
                entry->key_node,
                unsupported,
                fmt::format("not supported by libci; the {} section is ignored", unsupported));
        }
    }
    // Sections are checked in dependency order, whatever their order in the file: a builder's
    // references need the worker classes, repositories and locks known first.
    const auto section = [&](std::string_view key) -> const YAML::Node* {
        const Entry* entry = fields.find(key);
        return entry != nullptr ? &entry->value : nullptr;
    };
    if (const auto* node = section("auth")) {
        check_auth(*node);
    }
    if (const auto* node = section("buildmaster")) {
        check_buildmaster(*node);
    }
    if (const auto* node = section("github")) {
        check_github(*node);
    }
    if (const auto* node = section("zulip")) {
        check_zulip(*node);
    }
    if (const auto* node = section("aws")) {
        check_aws(*node);
    }
    if (const auto* node = section("slaves")) {
        check_slaves(*node);
    }
    if (const auto* node = section("repositories")) {
        check_repositories(*node);
    }
    if (const auto* node = section("locks")) {
        check_locks(*node);
    }
    if (const auto* node = section("builders")) {
        check_builders(*node);
    }
    if (const auto* node = section("schedulers")) {
        check_schedulers(*node);
    }
    check_triggered();
    if (const Entry* entry = fields.find("failing_builders")) {
        check_failing_builders(*entry);
    }
    // After buildmaster: the default target is its host.
    if (const auto* node = section("deploy")) {
        check_deploy(*node);
    }
    if (reader_.has_errors()) {
        return std::nullopt;
    }
    return std::move(config_);
}

void Checker::check_auth(const YAML::Node& node) {
    if (node.IsNull()) {
        return;
    }
    Fields fields(reader_, node, "auth", {"user", "password", "users", "view"});
    if (!fields.valid()) {
        return;
    }
    Auth auth;
    // The old single user, or `users`, or both; a user needs its password and the reverse.
    if (!fields.has("users") || fields.has("user") || fields.has("password")) {
        fields.require("user");
        fields.require("password");
    }
    fields.read("user", auth.user);
    fields.read("password", auth.password);
    std::set<std::string> names;
    const auto check_user_name =
        [&](const YAML::Node& at, const std::string& path, const std::string& name) {
            if (!valid_auth_user(name)) {
                reader_.error(at,
                              path,
                              "a user is 1 to 64 printable characters without ':' or spaces at "
                              "either end");
            } else if (!names.insert(name).second) {
                reader_.error(at, path, fmt::format("user \"{}\" is listed twice", name));
            }
        };
    if (const Entry* user = fields.find("user"); user != nullptr && !auth.user.empty()) {
        check_user_name(user->value, "auth.user", auth.user);
    }
    if (const Entry* password = fields.find("password");
        password != nullptr && !auth.password.empty()) {
        reader_.warning(password->key_node,
                        "auth.password",
                        "a plain password: list the user under auth.users with a "
                        "password_hash from `ci-master hash-password` instead");
    }
    if (const Entry* users = fields.find("users"); users != nullptr && !users->value.IsNull()) {
        if (!users->value.IsSequence()) {
            reader_.error(
                users->value, "auth.users", "expected a list of {user, password_hash} mappings");
        } else {
            for (std::size_t i = 0; i < users->value.size(); ++i) {
                const auto path = fmt::format("auth.users[{}]", i);
                Fields item(reader_, users->value[i], path, {"user", "password_hash"});
                if (!item.valid()) {
                    continue;
                }
                AuthUser user;
                item.require("user");
                item.require("password_hash");
                item.read("user", user.user);
                item.read("password_hash", user.password_hash);
                if (const Entry* name = item.find("user"); name != nullptr && !user.user.empty()) {
                    check_user_name(name->value, item.path("user"), user.user);
                }
                if (const Entry* hash = item.find("password_hash");
                    hash != nullptr && !user.password_hash.empty()) {
                    if (auto parsed = crypto::parse_password_hash(user.password_hash); !parsed) {
                        reader_.error(hash->value,
                                      item.path("password_hash"),
                                      parsed.error().message +
                                          " (a plain password belongs in auth.password)");
                    }
                }
                auth.users.push_back(std::move(user));
            }
        }
    }
    if (const Entry* view = fields.find("view"); view != nullptr && !view->value.IsNull()) {
        if (auto text = reader_.string(view->value, "auth.view")) {
            if (*text == "login") {
                auth.view = AuthView::Login;
            } else if (*text != "anonymous") {
                reader_.error(view->value, "auth.view", "expected anonymous or login");
            }
        }
    }
    config_.auth = std::move(auth);
}

void Checker::check_buildmaster(const YAML::Node& node) {
    Fields fields(reader_,
                  node,
                  "buildmaster",
                  {"host",
                   "docker_tag",
                   "web_port",
                   "worker_port",
                   "state",
                   "url",
                   "web_hosts",
                   "max_retries",
                   "tls",
                   "limits",
                   "max_upload_size",
                   "results_retention",
                   "trusted_proxies"});
    Buildmaster& out = config_.buildmaster;
    fields.read("trusted_proxies", out.trusted_proxies);
    for (std::size_t i = 0; i < out.trusted_proxies.size(); ++i) {
        if (auto parsed = parse_ip_network(out.trusted_proxies[i]); !parsed) {
            reader_.error(fields.find("trusted_proxies")->value[i],
                          fmt::format("buildmaster.trusted_proxies[{}]", i),
                          fmt::format("{}, got \"{}\"",
                                      parsed.error().message,
                                      out.trusted_proxies[i].substr(0, 64)));
        }
    }
    fields.read("host", out.host);
    fields.read("docker_tag", out.docker_tag);
    if (!is_image_tag(out.docker_tag) && fields.has("docker_tag")) {
        reader_.error(fields.find("docker_tag")->value,
                      fields.path("docker_tag"),
                      fmt::format("expected an image tag (letters, digits, '_', '.' and '-', at "
                                  "most 128, not starting with '.' or '-'), got \"{}\"",
                                  out.docker_tag));
    }
    fields.read("web_port", out.web_port);
    fields.read("worker_port", out.worker_port);
    fields.read("state", out.state);
    fields.read("url", out.url);
    check_http_url(fields, "url", out.url);
    fields.read("web_hosts", out.web_hosts);
    if (const Entry* hosts = fields.find("web_hosts");
        hosts != nullptr && hosts->value.IsSequence()) {
        for (std::size_t i = 0; i < out.web_hosts.size() && i < hosts->value.size(); ++i) {
            if (!is_web_host_name(out.web_hosts[i])) {
                reader_.error(hosts->value[i],
                              fmt::format("buildmaster.web_hosts[{}]", i),
                              fmt::format("expected a host name (letters, digits, '-' and '.', "
                                          "at most 253; no port, no scheme), got \"{}\"",
                                          out.web_hosts[i]));
            }
        }
    }
    fields.read("max_retries", out.max_retries, 0, 100);
    if (const Entry* size = fields.find("max_upload_size");
        size != nullptr && !size->value.IsNull()) {
        auto parsed = size->value.IsScalar() ? parse_size(size->value.Scalar())
                                             : fail(ErrorCode::InvalidArgument, "not a scalar");
        if (parsed) {
            out.max_upload_size = *parsed;
        } else {
            reader_.error(size->value,
                          fields.path("max_upload_size"),
                          "expected a size from 1 byte to 1TiB: a number of bytes, or a number "
                          "with KiB, MiB, GiB or TiB (e.g. \"2GiB\")");
        }
    }
    if (const auto* retention = fields.find("results_retention");
        retention != nullptr && retention->value.IsScalar() &&
        retention->value.Scalar() == "never") {
        out.results_retention = Duration(0);
    } else {
        fields.read("results_retention", out.results_retention);
    }
    if (out.web_port == out.worker_port && out.web_port != 0 && fields.has("worker_port")) {
        reader_.error(fields.find("worker_port")->value,
                      fields.path("worker_port"),
                      fmt::format("must differ from web_port ({})", out.web_port));
    }
    if (out.state.empty() && fields.has("state")) {
        reader_.error(
            fields.find("state")->value, fields.path("state"), "must name the state database file");
    }
    if (const auto* tls = fields.find("tls"); tls != nullptr && !tls->value.IsNull()) {
        check_worker_tls(tls->value, fields.path("tls"));
    }
    if (const auto* limits = fields.find("limits"); limits != nullptr && !limits->value.IsNull()) {
        check_limits(limits->value, fields.path("limits"));
    }
}

// `buildmaster.limits`: each a count, a size in bytes or a duration in a sane range; a
// per-address cap at most its total.
void Checker::check_limits(const YAML::Node& node, const std::string& path) {
    Fields fields(reader_,
                  node,
                  path,
                  {"http_connections",
                   "http_connections_per_address",
                   "worker_connections",
                   "worker_connections_per_address",
                   "http_header_bytes",
                   "body_memory_bytes",
                   "idle_timeout",
                   "header_timeout",
                   "request_timeout",
                   "hello_timeout"});
    if (!fields.valid()) {
        return;
    }
    Limits& out = config_.buildmaster.limits;
    constexpr int max_connections = 1'000'000;
    fields.read("http_connections", out.http_connections, 1, max_connections);
    fields.read(
        "http_connections_per_address", out.http_connections_per_address, 1, max_connections);
    fields.read("worker_connections", out.worker_connections, 1, max_connections);
    fields.read(
        "worker_connections_per_address", out.worker_connections_per_address, 1, max_connections);
    // The header: at least a request line and a few fields; at most 1 MiB.
    fields.read("http_header_bytes", out.http_header_bytes, 1024, 1 << 20);
    // Bodies in flight: at least one API body (64 KiB); at most 1 GiB.
    fields.read("body_memory_bytes", out.body_memory_bytes, 64 * 1024, 1 << 30);
    for (const auto& [key, total, per_address] : {std::tuple{"http_connections_per_address",
                                                             out.http_connections,
                                                             out.http_connections_per_address},
                                                  std::tuple{"worker_connections_per_address",
                                                             out.worker_connections,
                                                             out.worker_connections_per_address}}) {
        if (per_address > total && fields.has(key)) {
            reader_.error(
                fields.find(key)->value,
                fields.path(key),
                fmt::format("must be at most the total ({}), got {}", total, per_address));
        }
    }
    const auto duration = [&](const char* key, Duration& value, Duration max) {
        fields.read(key, value);
        if (fields.has(key) && (value < Duration(1) || value > max)) {
            reader_.error(fields.find(key)->value,
                          fields.path(key),
                          fmt::format("expected a duration from 1s to {}s, got {}s",
                                      max.count(),
                                      value.count()));
        }
    };
    duration("idle_timeout", out.idle_timeout, Duration(3600));
    duration("header_timeout", out.header_timeout, Duration(600));
    duration("request_timeout", out.request_timeout, Duration(3600));
    duration("hello_timeout", out.hello_timeout, Duration(600));
    if (out.request_timeout < out.header_timeout && fields.has("request_timeout")) {
        reader_.error(fields.find("request_timeout")->value,
                      fields.path("request_timeout"),
                      fmt::format("must be at least header_timeout ({}s), got {}s",
                                  out.header_timeout.count(),
                                  out.request_timeout.count()));
    }
}

// `buildmaster.tls`: a boolean, or a mapping of the certificate and key files (both or neither;
// whether the files hold a matching pair is checked where files are read: ci-master
// check-config and start).
void Checker::check_worker_tls(const YAML::Node& node, const std::string& path) {
    WorkerTls& out = config_.buildmaster.tls;
    if (node.IsScalar()) {
        if (auto enabled = reader_.boolean(node, path)) {
            out.enabled = *enabled;
        }
        return;
    }
    Fields fields(reader_, node, path, {"cert", "key"});
    if (!fields.valid()) {
        return;
    }
    fields.read("cert", out.cert);
    fields.read("key", out.key);
    if (fields.has("cert") != fields.has("key")) {
        const auto* given = fields.find(fields.has("cert") ? "cert" : "key");
        reader_.error(given->key_node,
                      fields.path(fields.has("cert") ? "key" : "cert"),
                      "cert and key go together: give both, or neither for a self-signed "
                      "certificate the master creates");
    }
}

void Checker::check_github(const YAML::Node& node) {
    Fields fields(reader_,
                  node,
                  "github",
                  {"token",
                   "report_status",
                   "webhook_secret",
                   "api_url",
                   "context_prefix",
                   "strip_prefix",
                   "builders",
                   "give_up"});
    Github& out = config_.github;
    fields.read("token", out.token);
    fields.read("report_status", out.report_status);
    fields.read("webhook_secret", out.webhook_secret);
    fields.read("api_url", out.api_url);
    if (out.api_url.empty() && fields.has("api_url")) {
        reader_.error(fields.find("api_url")->value,
                      fields.path("api_url"),
                      "must be the API's base URL (https://api.github.com)");
    }
    check_http_url(fields, "api_url", out.api_url);
    fields.read("context_prefix", out.context_prefix);
    fields.read("strip_prefix", out.strip_prefix);
    fields.read("builders", out.builders);
    fields.read("give_up", out.give_up);
    if (out.give_up.count() == 0 && fields.has("give_up")) {
        reader_.error(fields.find("give_up")->value, fields.path("give_up"), "must be at least 1s");
    }
    // A status context is at most 255 characters for GitHub; a builder name adds to the prefix.
    if (out.context_prefix.size() > 100) {
        reader_.error(fields.find("context_prefix")->value,
                      fields.path("context_prefix"),
                      "at most 100 characters");
    }
    if (out.report_status && out.token.empty() && fields.has("report_status")) {
        reader_.error(fields.find("report_status")->value,
                      fields.path("report_status"),
                      "reporting statuses needs github.token");
    }
}

void Checker::check_zulip(const YAML::Node& node) {
    if (node.IsNull()) {
        return;
    }
    Fields fields(
        reader_,
        node,
        "zulip",
        {"user", "password", "stream", "critical_stream", "ops_stream", "site", "give_up"});
    Zulip zulip;
    for (const auto* key : {"user", "password", "stream"}) {
        fields.require(key);
    }
    fields.read("user", zulip.user);
    fields.read("password", zulip.password);
    fields.read("stream", zulip.stream);
    fields.read("critical_stream", zulip.critical_stream);
    fields.read("ops_stream", zulip.ops_stream);
    fields.read("site", zulip.site);
    if (zulip.site.empty() && fields.has("site")) {
        reader_.error(fields.find("site")->value,
                      fields.path("site"),
                      "must be the Zulip server's URL (https://example.zulipchat.com)");
    }
    check_http_url(fields, "site", zulip.site);
    fields.read("give_up", zulip.give_up);
    if (zulip.give_up.count() == 0 && fields.has("give_up")) {
        reader_.error(fields.find("give_up")->value, fields.path("give_up"), "must be at least 1s");
    }
    config_.zulip = std::move(zulip);
}

void Checker::check_aws(const YAML::Node& node) {
    Fields fields(reader_,
                  node,
                  "aws",
                  {"identifier", "secret_identifier", "region", "image_tags", "endpoint_url"});
    Aws& out = config_.aws;
    fields.read("identifier", out.identifier);
    fields.read("secret_identifier", out.secret_identifier);
    fields.read("region", out.region);
    // image_tags is tri-state: absent keeps {production: "true"}, null or {} means no filter.
    fields.read("image_tags", out.image_tags);
    fields.read("endpoint_url", out.endpoint_url);
    if (!out.endpoint_url.empty() && !out.endpoint_url.starts_with("http://") &&
        !out.endpoint_url.starts_with("https://")) {
        reader_.error(
            fields.find("endpoint_url")->value,
            fields.path("endpoint_url"),
            fmt::format(R"(expected an http:// or https:// URL, got "{}")", out.endpoint_url));
    }
    if (out.identifier.empty() != out.secret_identifier.empty()) {
        const bool has_id = !out.identifier.empty();
        const std::string_view missing = has_id ? "secret_identifier" : "identifier";
        const std::string_view present = has_id ? "identifier" : "secret_identifier";
        reader_.error(fields.node(),
                      fields.path(missing),
                      fmt::format("required when aws.{} is set", present));
    }
}

// The keys of an EC2 class beyond its image, size and price.
void Checker::check_ec2_class(Fields& fields, Ec2Workers& out) {
    fields.read("key_name", out.key_name);
    fields.read("security_groups", out.security_groups);
    fields.read("subnet_id", out.subnet_id);
    fields.read("iam_instance_profile", out.iam_instance_profile);
    fields.read("tags", out.tags);
    for (const auto& [key, value] : out.tags) {
        // The pool's own tags find its instances again; a class must not overwrite them.
        if (key == "Name" || key.starts_with("ci:") || key.starts_with("aws:")) {
            reader_.error(fields.find("tags")->value,
                          fields.path("tags") + "." + key,
                          "is set by the master (Name, ci:*) or reserved by AWS (aws:*)");
        }
    }
    fields.read("region", out.region);
    fields.read("missing_timeout", out.missing_timeout);
    fields.read("build_wait_timeout", out.build_wait_timeout);
    fields.read("max_lifetime", out.max_lifetime);
    const auto at_least_a_second = [&](std::string_view key, Duration value) {
        if (value.count() <= 0 && fields.has(key)) {
            reader_.error(fields.find(key)->value, fields.path(key), "must be at least 1s");
        }
    };
    at_least_a_second("missing_timeout", out.missing_timeout);
    at_least_a_second("build_wait_timeout", out.build_wait_timeout);
    at_least_a_second("max_lifetime", out.max_lifetime.value_or(Duration{1}));
    fields.read("spot_fallback", out.spot_fallback);
    if (out.spot_fallback && !out.max_spot_price) {
        reader_.error(fields.find("spot_fallback")->value,
                      fields.path("spot_fallback"),
                      "needs max_spot_price (a class without it launches on-demand already)");
    }
    std::string idle_action = "terminate";
    fields.read("idle_action", idle_action);
    if (idle_action == "stop") {
        out.idle_action = Ec2Workers::IdleAction::Stop;
    } else if (idle_action != "terminate") {
        reader_.error(fields.find("idle_action")->value,
                      fields.path("idle_action"),
                      fmt::format(R"(expected "terminate" or "stop", got "{}")", idle_action));
    }
    fields.read("stopped_max", out.stopped_max, 0, max_count);
    if (out.idle_action != Ec2Workers::IdleAction::Stop) {
        if (out.stopped_max > 0) {
            reader_.warning(fields.find("stopped_max")->value,
                            fields.path("stopped_max"),
                            "has no effect without idle_action: stop (idle instances are "
                            "terminated)");
        }
        return;
    }
    if (out.stopped_max == 0) {
        reader_.error(fields.find("idle_action")->value,
                      fields.path("stopped_max"),
                      "must be at least 1 with idle_action: stop (0 keeps no instance stopped)");
    }
    // EC2 stops a spot instance only when it was requested persistent with
    // InstanceInterruptionBehavior=stop; the pool launches one-time spot requests, which can
    // only be terminated. The class is valid: its on-demand instances (spot_fallback) stop.
    if (out.max_spot_price) {
        reader_.warning(fields.find("idle_action")->value,
                        fields.path("idle_action"),
                        out.spot_fallback
                            ? "stop applies to on-demand instances only: this class's spot "
                              "instances (max_spot_price) are terminated when idle; the "
                              "on-demand ones spot_fallback launches are stopped"
                            : "stop applies to on-demand instances only: this class launches "
                              "spot instances (max_spot_price), which are terminated when idle");
    }
}

void Checker::check_slaves(const YAML::Node& node) {
    auto entries = mapping_entries(reader_, node, "slaves");
    if (!entries) {
        return;
    }
    for (const auto& entry : *entries) {
        worker_classes_.insert(entry.key);
        check_worker_class(entry.key, entry);
    }
}

void Checker::check_worker_class(const std::string& name, const Entry& entry) {
    const std::string path = join_path("slaves", name);
    Fields fields(reader_,
                  entry.value,
                  path,
                  {"ami",
                   "slaves",
                   "instance_type",
                   "max_builds",
                   "max_spot_price",
                   "distribution",
                   "user_data_template",
                   "unreachable_timeout",
                   "key_name",
                   "security_groups",
                   "subnet_id",
                   "iam_instance_profile",
                   "tags",
                   "region",
                   "missing_timeout",
                   "build_wait_timeout",
                   "max_lifetime",
                   "spot_fallback",
                   "idle_action",
                   "stopped_max",
                   "worker_files",
                   "passwords",
                   "local",
                   "step_user",
                   "openstack-image"});
    if (!fields.valid()) {
        return;
    }
    const bool ec2 = fields.find("ami") != nullptr;
    const bool fixed = fields.find("passwords") != nullptr;
    const bool local = fields.find("local") != nullptr;
    const bool rackspace = fields.find("openstack-image") != nullptr;
    const int kinds = int(ec2) + int(fixed) + int(local) + int(rackspace);
    if (kinds == 0) {
        reader_.error(entry.key_node,
                      path,
                      "a worker class needs one of ami (EC2 workers), passwords (static workers) "
                      "or local: true (workers inside the master)");
        return;
    }
    if (kinds > 1) {
        reader_.error(entry.key_node,
                      path,
                      "a worker class has exactly one of ami, passwords, local and "
                      "openstack-image");
        return;
    }
    if (rackspace) {
        reader_.warning(entry.key_node,
                        path,
                        "Rackspace workers are not supported by libci; this class is ignored");
        unsupported_classes_.insert(name);
        return;
    }
    // The keys only an EC2 class has (besides `ami`, which makes it one).
    static constexpr std::array<std::string_view, 16> ec2_only{"instance_type",
                                                               "user_data_template",
                                                               "unreachable_timeout",
                                                               "max_spot_price",
                                                               "key_name",
                                                               "security_groups",
                                                               "subnet_id",
                                                               "iam_instance_profile",
                                                               "tags",
                                                               "region",
                                                               "missing_timeout",
                                                               "build_wait_timeout",
                                                               "max_lifetime",
                                                               "spot_fallback",
                                                               "idle_action",
                                                               "stopped_max"};
    if (ec2) {
        fields.forbid({"local"}, "for an EC2 worker class");
        fields.forbid({"step_user"},
                      "for an EC2 worker class (only local classes have it; a remote worker "
                      "takes ci-worker start --step-user)");
        Ec2Workers out;
        fields.require("ami");
        fields.read("ami", out.ami);
        fields.read("slaves", out.count, 1, max_count);
        fields.read("instance_type", out.instance_type);
        fields.read("max_builds", out.max_builds, 1, max_count);
        fields.read("max_spot_price", out.max_spot_price);
        if (out.max_spot_price && *out.max_spot_price <= 0) {
            reader_.error(fields.find("max_spot_price")->value,
                          fields.path("max_spot_price"),
                          "must be a positive price in USD per hour");
        }
        fields.read("distribution", out.distribution);
        // The file itself is read by check-config (check_user_data_templates): this checks
        // text only.
        fields.read("user_data_template", out.user_data_template);
        fields.read("unreachable_timeout", out.unreachable_timeout);
        if (fields.has("unreachable_timeout") && out.unreachable_timeout.count() < 60) {
            reader_.error(fields.find("unreachable_timeout")->value,
                          fields.path("unreachable_timeout"),
                          "must be at least 60s (the watchdog checks once a minute)");
        }
        check_ec2_class(fields, out);
        check_worker_files(fields, name, out.worker_files);
        config_.slaves.emplace(name, std::move(out));
    } else if (fixed) {
        fields.forbid({"slaves"}, "for a static worker class (it has passwords: one worker each)");
        fields.forbid(std::span(ec2_only), "for a static worker class (only EC2 classes have it)");
        fields.forbid({"step_user"},
                      "for a static worker class (only local classes have it; a remote worker "
                      "takes ci-worker start --step-user)");
        StaticWorkers out;
        fields.read("passwords", out.passwords);
        if (out.passwords.empty()) {
            reader_.error(fields.find("passwords")->value,
                          fields.path("passwords"),
                          "needs at least one password (one static worker each)");
        }
        for (std::size_t i = 0; i < out.passwords.size(); ++i) {
            if (out.passwords[i].empty()) {
                reader_.error(fields.find("passwords")->value,
                              fmt::format("{}[{}]", fields.path("passwords"), i),
                              "a worker password cannot be empty");
            }
        }
        fields.read("max_builds", out.max_builds, 1, max_count);
        fields.read("distribution", out.distribution);
        check_worker_files(fields, name, out.worker_files);
        config_.slaves.emplace(name, std::move(out));
    } else {
        fields.forbid({"distribution"}, "for a local worker class");
        fields.forbid({"worker_files"},
                      "for a local worker class (its workers run inside the master, which reads "
                      "files itself)");
        fields.forbid(std::span(ec2_only), "for a local worker class (only EC2 classes have it)");
        bool enabled = true;
        fields.read("local", enabled);
        if (!enabled) {
            reader_.error(fields.find("local")->value,
                          fields.path("local"),
                          "must be true (remove the class to have no local workers)");
        }
        LocalWorkers out;
        fields.read("slaves", out.count, 1, max_count);
        fields.read("max_builds", out.max_builds, 1, max_count);
        fields.read("step_user", out.step_user);
        if (fields.has("step_user") && out.step_user.empty()) {
            reader_.error(fields.find("step_user")->value,
                          fields.path("step_user"),
                          "must name a user (remove it to run steps as the master's user)");
        }
        config_.slaves.emplace(name, out);
    }
}

// `worker_files`: DEST -> SOURCE. The DESTs are checked here; the SOURCEs too when the text is
// a file's (base_directory_ set): each resolved against the file's directory, read, and held to
// the size caps, so that check-config names a missing or oversized one at its line.
void Checker::check_worker_files(const Fields& fields,
                                 const std::string& name,
                                 std::map<std::string, std::string>& out) {
    const Entry* files = fields.find("worker_files");
    if (files == nullptr) {
        return;
    }
    const std::string path = fields.path("worker_files");
    auto entries = mapping_entries(reader_, files->value, path);
    if (!entries) {
        return;
    }
    if (entries->size() > max_worker_files) {
        reader_.error(files->key_node, path, fmt::format("more than {} files", max_worker_files));
        return;
    }
    std::size_t total = 0;
    bool ok = true;
    for (const auto& entry : *entries) {
        const std::string entry_path = join_path(path, entry.key);
        if (auto checked = check_worker_file_destination(entry.key); !checked) {
            reader_.error(entry.key_node, entry_path, checked.error().message);
            ok = false;
            continue;
        }
        if (entry.value.IsNull()) {
            reader_.error(entry.key_node, entry_path, "needs a SOURCE: the file on the master");
            ok = false;
            continue;
        }
        auto source = reader_.string(entry.value, entry_path);
        if (!source) {
            ok = false;
            continue;
        }
        if (source->empty()) {
            reader_.error(entry.value, entry_path, "needs a SOURCE: the file on the master");
            ok = false;
            continue;
        }
        if (base_directory_ != nullptr && std::filesystem::path(*source).is_relative()) {
            *source = (*base_directory_ / *source).lexically_normal().string();
        }
        if (base_directory_ != nullptr) {
            auto read = read_worker_files(name, {{entry.key, *source}});
            if (!read) {
                // The message starts with the key path, which the diagnostic shows already.
                std::string message = read.error().message;
                if (message.starts_with(entry_path + ": ")) {
                    message.erase(0, entry_path.size() + 2);
                }
                reader_.error(entry.value, entry_path, std::move(message));
                ok = false;
                continue;
            }
            total += read->front().content.size();
            if (total > max_worker_files_size) {
                reader_.error(entry.value,
                              entry_path,
                              fmt::format("the class's worker files are larger than {} bytes (4 "
                                          "MiB) together",
                                          max_worker_files_size));
                ok = false;
            }
        }
        out.emplace(entry.key, std::move(*source));
    }
    if (ok) {
        if (auto checked = check_worker_file_destinations(out); !checked) {
            reader_.error(files->key_node, path, checked.error().message);
        }
    }
}

void Checker::check_repositories(const YAML::Node& node) {
    auto entries = mapping_entries(reader_, node, "repositories");
    if (!entries) {
        return;
    }
    for (const auto& entry : *entries) {
        repositories_.insert(entry.key);
        Fields fields(
            reader_,
            entry.value,
            join_path("repositories", entry.key),
            {"url", "default_branch", "poll_interval", "github", "allow_local_submodules"});
        if (!fields.valid()) {
            continue;
        }
        Repository out;
        fields.require("url");
        fields.read("url", out.url);
        fields.read("default_branch", out.default_branch);
        fields.read("poll_interval", out.poll_interval);
        if (out.poll_interval && out.poll_interval->count() == 0) {
            reader_.error(fields.find("poll_interval")->value,
                          fields.path("poll_interval"),
                          "must be at least 1s (leave it out to poll never)");
        }
        if (const auto* allow = fields.find("allow_local_submodules")) {
            fields.read("allow_local_submodules", out.allow_local_submodules);
            // Accepted early (checkouts by hand have it), said so.
            reader_.warning(allow->value,
                            fields.path("allow_local_submodules"),
                            "not used yet: builds do not check out submodules (ci-worker "
                            "checkout --submodules --allow-local-submodules does)");
        }
        fields.read("github", out.github);
        if (!out.github.empty() && !is_github_repository_name(out.github)) {
            reader_.error(fields.find("github")->value,
                          fields.path("github"),
                          fmt::format("expected OWNER/REPO, got \"{}\"", out.github));
        } else if (config_.github.report_status && !out.url.empty() &&
                   github_repository(out).empty()) {
            reader_.warning(entry.key_node,
                            join_path("repositories", entry.key),
                            "not a GitHub URL and no github: OWNER/REPO: its builds' commit "
                            "statuses are not reported");
        }
        config_.repositories.emplace(entry.key, std::move(out));
    }
}

void Checker::check_locks(const YAML::Node& node) {
    auto entries = mapping_entries(reader_, node, "locks");
    if (!entries) {
        return;
    }
    for (const auto& entry : *entries) {
        locks_.insert(entry.key);
        Fields fields(reader_, entry.value, join_path("locks", entry.key), {"max_count", "scope"});
        Lock out;
        fields.read("max_count", out.max_count, 1, max_count);
        std::string scope;
        fields.read("scope", scope);
        if (scope == "worker") {
            out.scope = Lock::Scope::Worker;
        } else if (!scope.empty() && scope != "master") {
            std::string message = fmt::format("expected master or worker, got \"{}\"", scope);
            if (auto suggestion = closest_match(scope, {"master", "worker"})) {
                message += fmt::format(" (did you mean \"{}\"?)", *suggestion);
            }
            reader_.error(fields.find("scope")->value, fields.path("scope"), std::move(message));
        }
        config_.locks.emplace(entry.key, out);
    }
}

void Checker::check_builders(const YAML::Node& node) {
    auto entries = mapping_entries(reader_, node, "builders");
    if (!entries) {
        return;
    }
    for (const auto& entry : *entries) {
        builders_.insert(entry.key);
    }
    for (const auto& entry : *entries) {
        check_builder(entry.key, entry.value);
    }
}

void Checker::check_known(const std::vector<Reference>& references,
                          const std::set<std::string>& known,
                          std::string_view section,
                          const std::set<std::string>& unsupported) {
    const std::vector<std::string_view> candidates(known.begin(), known.end());
    for (const auto& reference : references) {
        if (unsupported.contains(reference.name)) {
            reader_.error(
                reference.node,
                reference.path,
                fmt::format("{} \"{}\" is not supported by libci", section, reference.name));
            continue;
        }
        if (known.contains(reference.name)) {
            continue;
        }
        std::string message = fmt::format("no {} named \"{}\"", section, reference.name);
        if (auto suggestion = closest_match(reference.name, candidates)) {
            message += fmt::format(" (did you mean \"{}\"?)", *suggestion);
        }
        reader_.error(reference.node, reference.path, std::move(message));
    }
}

void Checker::check_builder(const std::string& name, const YAML::Node& node) {
    const std::string path = join_path("builders", name);
    Fields fields(reader_,
                  node,
                  path,
                  {"repository", "workers", "locks", "merge_target", "timeout", "steps"});
    if (!fields.valid()) {
        return;
    }
    Builder out;
    fields.require("workers");
    fields.require("steps");
    fields.read("repository", out.repository);
    if (const Entry* entry = fields.find("repository"); entry && !out.repository.empty()) {
        check_known({Reference{out.repository, entry->value, fields.path("repository")}},
                    repositories_,
                    "repository");
    }
    const auto workers = read_references(reader_, fields, "workers");
    check_known(workers, worker_classes_, "worker class (under slaves)", unsupported_classes_);
    out.workers = names_of(workers);
    if (const Entry* entry = fields.find("workers");
        entry && entry->value.IsSequence() && entry->value.size() == 0) {
        reader_.error(entry->value, fields.path("workers"), "needs at least one worker class");
    }
    const auto locks = read_references(reader_, fields, "locks");
    check_known(locks, locks_, "lock");
    out.locks = names_of(locks);
    if (const Entry* entry = fields.find("repository"); entry && entry->value.IsNull()) {
        // `repository:` with nothing after it reads as "none" too easily: say what absent means.
        reader_.error(entry->value,
                      fields.path("repository"),
                      "expected a repositories name (leave the key out for a builder without "
                      "a repository)");
    }
    if (out.repository.empty() && fields.has("merge_target")) {
        reader_.error(fields.find("merge_target")->key_node,
                      fields.path("merge_target"),
                      "not valid for a builder without a repository (nothing is checked out)");
    }
    std::string merge_target;
    fields.read("merge_target", merge_target);
    if (merge_target == "auto" || merge_target.empty()) {
        out.merge_target = MergeTarget{};
    } else if (merge_target == "none") {
        out.merge_target = MergeTarget{MergeTarget::Mode::None, {}};
    } else {
        out.merge_target = MergeTarget{MergeTarget::Mode::Branch, merge_target};
    }
    fields.read("timeout", out.timeout);
    if (const Entry* entry = fields.find("steps"); entry && !entry->value.IsNull()) {
        const std::string steps_path = fields.path("steps");
        if (!entry->value.IsSequence()) {
            reader_.error(entry->value, steps_path, "expected a list of steps");
        } else if (entry->value.size() == 0) {
            reader_.error(entry->value, steps_path, "needs at least one step");
        } else {
            std::set<std::string> step_names;
            for (std::size_t i = 0; i < entry->value.size(); ++i) {
                const YAML::Node step_node = entry->value[i];
                const std::string step_path = fmt::format("{}[{}]", steps_path, i);
                auto step = check_step(name, step_node, step_path);
                if (!step) {
                    continue;
                }
                if (!step->name.empty() && !step_names.insert(step->name).second) {
                    reader_.error(
                        step_node,
                        step_path + ".name",
                        fmt::format("another step of this builder is named \"{}\"", step->name));
                }
                out.steps.push_back(std::move(*step));
            }
        }
    }
    config_.builders.emplace(name, std::move(out));
}

// An absolute path, or one with a ".." component: it could leave the checkout.
bool leaves_checkout(std::string_view path) {
    return path.front() == '/' || path == ".." || path.starts_with("../") ||
           path.find("/../") != std::string_view::npos || path.ends_with("/..");
}

std::optional<Step>
Checker::check_step(const std::string& builder, const YAML::Node& node, const std::string& path) {
    Fields fields(reader_,
                  node,
                  path,
                  {"name",
                   "run",
                   "trigger",
                   "upload",
                   "after_upload",
                   "env",
                   "workdir",
                   "timeout",
                   "grace",
                   "halt_on_failure",
                   "always_run",
                   "flunk_on_failure",
                   "warn_on_failure",
                   "inactivity_timeout",
                   "set_property",
                   "test_results",
                   "logfiles"});
    if (!fields.valid()) {
        return std::nullopt;
    }
    Step out;
    fields.require("name");
    fields.read("name", out.name);
    if (const Entry* trigger = fields.find("trigger")) {
        fields.forbid({"run", "env", "workdir", "grace"},
                      "for a trigger step (it runs no command)");
        check_trigger(builder, *trigger, fields.path("trigger"), out.trigger.emplace());
        fields.forbid({"upload", "after_upload"}, "for a trigger step");
    } else if (const Entry* upload = fields.find("upload")) {
        fields.forbid(
            {"run", "env", "workdir", "grace", "set_property", "test_results", "logfiles"},
            "for an upload step (it runs no command on the worker; from is relative "
            "to the checkout)");
        check_upload(*upload, fields.path("upload"), out.upload.emplace());
        check_after_upload(fields, out);
    } else if (fields.require("run")) {
        const Entry* run = fields.find("run");
        if (run->value.IsScalar()) {
            out.command = {"/bin/sh", "-c", run->value.Scalar()};
            // A value pasted into shell text would be shell code: a forced property could run
            // anything on the worker. So shell text is left to the shell (${HOME} is its own);
            // the argv form keeps each value one argument.
            if (mentions_placeholders(run->value.Scalar())) {
                reader_.warning(run->value,
                                fields.path("run"),
                                "placeholders (${prop:NAME}, ${branch}, ...) are not filled in "
                                "in a shell command: write run as a list (an argv), or use the "
                                "environment (\"$CI_PROP_NAME\", \"$CI_BRANCH\", "
                                "\"$CI_REVISION\", \"$CI_BUILD_ID\")");
            }
        } else if (run->value.IsSequence()) {
            fields.read("run", out.command);
            if (out.command.empty()) {
                reader_.error(run->value, fields.path("run"), "needs a command");
            }
            for (std::size_t i = 0; i < out.command.size() && !is_shell_command(out.command); ++i) {
                if (auto valid = check_placeholders(out.command[i]); !valid) {
                    reader_.error(run->value[i],
                                  fmt::format("{}[{}]", fields.path("run"), i),
                                  valid.error().message);
                }
            }
        } else {
            reader_.error(run->value,
                          fields.path("run"),
                          "expected a shell command (a string) or an argv (a list of strings)");
        }
    }
    if (!out.upload) {
        fields.forbid({"after_upload"}, "without upload (it runs after an upload step)");
    }
    fields.read("env", out.env);
    for (const auto& [name, value] : out.env) {
        if (auto valid = check_placeholders(value); !valid) {
            reader_.error(
                fields.find("env")->value, fields.path("env") + "." + name, valid.error().message);
        }
    }
    fields.read("workdir", out.workdir);
    if (auto valid = check_placeholders(out.workdir); !valid) {
        reader_.error(fields.find("workdir")->value, fields.path("workdir"), valid.error().message);
    }
    if (!out.workdir.empty()) {
        if (leaves_checkout(out.workdir)) {
            reader_.error(fields.find("workdir")->value,
                          fields.path("workdir"),
                          "must be a path inside the checkout (relative, without ..)");
        }
    }
    fields.read("timeout", out.timeout);
    fields.read("grace", out.grace);
    fields.read("halt_on_failure", out.halt_on_failure);
    fields.read("always_run", out.always_run);
    fields.read("flunk_on_failure", out.flunk_on_failure);
    // A failure that does not fail the build does not end it either, unless the file says so.
    if (!out.flunk_on_failure && fields.find("halt_on_failure") == nullptr) {
        out.halt_on_failure = false;
    }
    fields.read("warn_on_failure", out.warn_on_failure);
    fields.read("inactivity_timeout", out.inactivity_timeout);
    fields.read("set_property", out.set_property);
    if (!out.set_property.empty() && !valid_property_name(out.set_property)) {
        reader_.error(fields.find("set_property")->value,
                      fields.path("set_property"),
                      fmt::format("a property name is 1 to {} characters of [A-Za-z0-9_.-]",
                                  max_property_name));
    }
    fields.read("test_results", out.test_results);
    if (!out.test_results.empty() && leaves_checkout(out.test_results)) {
        reader_.error(fields.find("test_results")->value,
                      fields.path("test_results"),
                      "must be a glob inside the checkout (relative, without ..)");
    }
    fields.read("logfiles", out.logfiles);
    for (const auto& [name, file] : out.logfiles) {
        const auto& at = fields.find("logfiles")->value;
        const auto key = fields.path("logfiles") + "." + name;
        if (!valid_property_name(name)) {
            reader_.error(at,
                          key,
                          fmt::format("a log name is 1 to {} characters of [A-Za-z0-9_.-]",
                                      max_property_name));
        }
        if (file.empty() || leaves_checkout(file)) {
            reader_.error(at, key, "must be a file inside the checkout (relative, without ..)");
        }
    }
    return out;
}

void Checker::check_upload(const Entry& entry, const std::string& path, Upload& out) {
    Fields fields(reader_, entry.value, path, {"from", "to"});
    if (!fields.valid()) {
        return;
    }
    if (fields.require("from")) {
        fields.read("from", out.from);
        if (out.from.empty() || leaves_checkout(out.from)) {
            reader_.error(fields.find("from")->value,
                          fields.path("from"),
                          "must be a path inside the checkout (relative, without ..)");
        }
    }
    if (!fields.require("to")) {
        return;
    }
    fields.read("to", out.to);
    const auto& node = fields.find("to")->value;
    if (out.to.starts_with("s3://")) {
        const auto rest = std::string_view(out.to).substr(5);
        const auto bucket = rest.substr(0, rest.find('/'));
        auto prefix = bucket.size() < rest.size() ? rest.substr(bucket.size() + 1) : "";
        if (prefix.ends_with('/')) {
            prefix.remove_suffix(1); // "s3://bucket/docs/" is "s3://bucket/docs"
        }
        if (!valid_bucket_name(bucket)) {
            reader_.error(node,
                          fields.path("to"),
                          "an S3 destination is s3://BUCKET or s3://BUCKET/PREFIX with a bucket "
                          "name of 3 to 63 characters of [a-z0-9.-]");
        } else if (!prefix.empty() && !build::check_relative_path(prefix)) {
            reader_.error(node,
                          fields.path("to"),
                          fmt::format("the S3 prefix: {}",
                                      build::check_relative_path(prefix).error().message));
        }
        return;
    }
    if (auto valid = build::check_relative_path(out.to); !valid) {
        reader_.error(node,
                      fields.path("to"),
                      fmt::format("must name a directory under the build's results (or be "
                                  "s3://BUCKET/PREFIX): {}",
                                  valid.error().message));
    }
}

void Checker::check_after_upload(Fields& fields, Step& out) {
    const Entry* after = fields.find("after_upload");
    if (after == nullptr || after->value.IsNull()) {
        return;
    }
    if (after->value.IsScalar()) {
        out.after_upload = {"/bin/sh", "-c", after->value.Scalar()};
    } else if (after->value.IsSequence()) {
        fields.read("after_upload", out.after_upload);
    } else {
        reader_.error(after->value,
                      fields.path("after_upload"),
                      "expected a shell command (a string) or an argv (a list of strings)");
        return;
    }
    if (out.after_upload.empty() || out.after_upload.front().empty()) {
        reader_.error(after->value, fields.path("after_upload"), "needs a command");
    }
    if (out.upload && out.upload->to.starts_with("s3://")) {
        reader_.error(after->value,
                      fields.path("after_upload"),
                      "runs on the master in the uploaded directory: not for an S3 upload");
    }
}

void Checker::check_trigger(const std::string& builder,
                            const Entry& entry,
                            const std::string& path,
                            Trigger& out) {
    Fields fields(reader_, entry.value, path, {"builders", "wait"});
    if (!fields.valid()) {
        return;
    }
    if (fields.require("builders")) {
        const auto builders = read_references(reader_, fields, "builders");
        if (const Entry* list = fields.find("builders");
            list->value.IsSequence() && list->value.size() == 0) {
            reader_.error(list->value, fields.path("builders"), "needs at least one builder");
        }
        for (const auto& reference : builders) {
            triggered_.emplace_back(builder, reference);
        }
        out.builders = names_of(builders);
    }
    fields.read("wait", out.wait);
}

// Trigger steps name builders that exist, that a triggerable scheduler offers, and that check
// out the triggering builder's repository (the triggered builds test the same tree); periodic
// schedulers without a repository name builders without one.
void Checker::check_triggered() {
    for (const auto& [from, reference] : triggered_) {
        const auto source = config_.builders.find(from);
        const auto target = config_.builders.find(reference.name);
        if (!builders_.contains(reference.name)) {
            check_known({reference}, builders_, "builder");
        } else if (reference.name == from) {
            reader_.error(reference.node, reference.path, "a builder cannot trigger itself");
        } else if (!triggerable_.contains(reference.name)) {
            reader_.error(reference.node,
                          reference.path,
                          fmt::format("builder \"{}\" is not triggerable: list it under a "
                                      "scheduler of type triggerable",
                                      reference.name));
        } else if (source != config_.builders.end() && target != config_.builders.end() &&
                   source->second.repository != target->second.repository) {
            reader_.error(
                reference.node,
                reference.path,
                source->second.repository.empty()
                    ? std::string("a builder without a repository cannot trigger builds (they "
                                  "would have no branch or revision to build)")
                    : fmt::format("builder \"{}\" {}, not \"{}\" as this builder does: "
                                  "triggered builds test the same tree",
                                  reference.name,
                                  target->second.repository.empty()
                                      ? std::string("has no repository")
                                      : fmt::format("checks out repository \"{}\"",
                                                    target->second.repository),
                                  source->second.repository));
        }
    }
    for (const auto& reference : repositoryless_builders_) {
        const auto builder = config_.builders.find(reference.name);
        if (builder != config_.builders.end() && !builder->second.repository.empty()) {
            reader_.error(reference.node,
                          reference.path,
                          fmt::format("builder \"{}\" checks out repository \"{}\": this "
                                      "scheduler needs a repository",
                                      reference.name,
                                      builder->second.repository));
        }
    }
}

void Checker::check_patterns(const Fields& fields,
                             std::string_view key,
                             const std::vector<std::string>& patterns) {
    for (std::size_t i = 0; i < patterns.size(); ++i) {
        const std::string& pattern = patterns[i];
        const std::string path = fmt::format("{}[{}]", fields.path(key), i);
        if (pattern.empty()) {
            reader_.error(fields.find(key)->value, path, "a pattern cannot be empty");
            continue;
        }
        if (!is_regex_pattern(pattern)) {
            continue;
        }
        try {
            const std::regex compiled(pattern.substr(1, pattern.size() - 2),
                                      std::regex::ECMAScript);
        } catch (const std::regex_error& error) {
            reader_.error(fields.find(key)->value[i],
                          path,
                          fmt::format("invalid regular expression: {}", error.what()));
        }
    }
}

void Checker::check_schedulers(const YAML::Node& node) {
    auto entries = mapping_entries(reader_, node, "schedulers");
    if (!entries) {
        return;
    }
    for (const auto& entry : *entries) {
        check_scheduler(entry.key, entry.value);
    }
}

void Checker::check_scheduler(const std::string& name, const YAML::Node& node) {
    const std::string path = join_path("schedulers", name);
    Fields fields(reader_,
                  node,
                  path,
                  {"type",
                   "builders",
                   "collapse_requests",
                   "repository",
                   "branches",
                   "tags",
                   "important_files",
                   "tree_stable_timer",
                   "max_wait",
                   "interval",
                   "at",
                   "branch"});
    if (!fields.valid()) {
        return;
    }
    Scheduler out;
    fields.require("builders");
    if (!fields.require("type")) {
        return;
    }
    std::string type;
    fields.read("type", type);
    // The keys of one type only.
    static constexpr std::array<std::string_view, 5> branch_keys{
        "branches", "tags", "important_files", "tree_stable_timer", "max_wait"};
    static constexpr std::array<std::string_view, 3> periodic_keys{"interval", "at", "branch"};
    if (type == "branch") {
        out.type = Scheduler::Type::Branch;
        fields.forbid(periodic_keys, "for a branch scheduler");
        fields.require("repository");
    } else if (type == "force") {
        out.type = Scheduler::Type::Force;
        fields.forbid(branch_keys, "for a force scheduler");
        fields.forbid(periodic_keys, "for a force scheduler");
    } else if (type == "periodic") {
        out.type = Scheduler::Type::Periodic;
        fields.forbid(branch_keys, "for a periodic scheduler");
        if (fields.has("interval") == fields.has("at")) {
            reader_.error(node, path, "a periodic scheduler needs exactly one of interval and at");
        }
    } else if (type == "triggerable") {
        out.type = Scheduler::Type::Triggerable;
        constexpr std::string_view why =
            "for a triggerable scheduler (its builds are those trigger steps ask for)";
        fields.forbid({"repository", "collapse_requests"}, why);
        fields.forbid(branch_keys, why);
        fields.forbid(periodic_keys, why);
    } else {
        std::string message = "expected branch, force, periodic or triggerable";
        if (auto suggestion = closest_match(type, {"branch", "force", "periodic", "triggerable"})) {
            message += fmt::format(" (did you mean \"{}\"?)", *suggestion);
        }
        reader_.error(fields.find("type")->value, fields.path("type"), std::move(message));
        return;
    }
    const auto builders = read_references(reader_, fields, "builders");
    check_known(builders, builders_, "builder");
    out.builders = names_of(builders);
    if (out.type == Scheduler::Type::Triggerable) {
        for (const auto& reference : builders) {
            triggerable_.insert(reference.name);
        }
    }
    if (out.type == Scheduler::Type::Periodic && !fields.has("repository")) {
        // Maintenance jobs: builders without a repository, run on a schedule.
        std::ranges::copy(builders, std::back_inserter(repositoryless_builders_));
    }
    fields.read("collapse_requests", out.collapse_requests);
    fields.read("repository", out.repository);
    if (const Entry* entry = fields.find("repository"); entry && !out.repository.empty()) {
        check_known({Reference{out.repository, entry->value, fields.path("repository")}},
                    repositories_,
                    "repository");
    }
    if (out.type == Scheduler::Type::Branch) {
        fields.read("branches", out.branches);
        check_patterns(fields, "branches", out.branches);
        fields.read("tags", out.tags);
        check_patterns(fields, "tags", out.tags);
        fields.read("important_files", out.important_files);
        check_patterns(fields, "important_files", out.important_files);
        fields.read("tree_stable_timer", out.tree_stable_timer);
        fields.read("max_wait", out.max_wait);
        if (out.max_wait < out.tree_stable_timer) {
            const Entry* at = fields.find("max_wait");
            reader_.error(at != nullptr ? at->value : node,
                          fields.path("max_wait"),
                          fmt::format("must be at least tree_stable_timer ({}s), got {}s",
                                      out.tree_stable_timer.count(),
                                      out.max_wait.count()));
        }
    } else if (out.type == Scheduler::Type::Periodic) {
        fields.read("interval", out.interval);
        if (out.interval && out.interval->count() == 0) {
            reader_.error(
                fields.find("interval")->value, fields.path("interval"), "must be at least 1s");
        }
        fields.read("at", out.at);
        if (fields.has("at")) {
            static const std::regex time_of_day("([01][0-9]|2[0-3]):[0-5][0-9]");
            if (!std::regex_match(out.at, time_of_day)) {
                reader_.error(
                    fields.find("at")->value,
                    fields.path("at"),
                    fmt::format("expected a UTC time of day as HH:MM, got \"{}\"", out.at));
            }
        }
        fields.read("branch", out.branch);
    }
    config_.schedulers.emplace(name, std::move(out));
}

// A URL the master's HTTP client can reach: http:// or https://, with a host.
void Checker::check_http_url(const Fields& fields, std::string_view key, const std::string& url) {
    if (url.empty()) {
        return;
    }
    const bool http = url.starts_with("http://") || url.starts_with("https://");
    const auto host = url.find("//") + 2;
    if (!http || url.size() <= host || url[host] == '/') {
        reader_.error(fields.find(key)->value,
                      fields.path(key),
                      fmt::format("expected an http:// or https:// URL, got \"{}\"", url));
    }
}

void Checker::check_failing_builders(const Entry& entry) {
    if (auto names = reader_.string_list(entry.value, "failing_builders")) {
        config_.failing_builders = *names;
        // The old deployment defined builders in Python, so its failing_builders name builders
        // this file may not have: say so, but do not refuse the file.
        if (!builders_.empty()) {
            for (std::size_t i = 0; i < names->size(); ++i) {
                if (!builders_.contains((*names)[i])) {
                    reader_.warning(entry.value[i],
                                    fmt::format("failing_builders[{}]", i),
                                    fmt::format("no builder named \"{}\"", (*names)[i]));
                }
            }
        }
    }
}

void Checker::check_deploy(const YAML::Node& node) {
    Fields fields(reader_, node, "deploy", {"target", "runtime", "image", "data_dir", "binary"});
    if (!fields.valid()) {
        return;
    }
    Deploy& out = config_.deploy;
    fields.read("target", out.target);
    if (const Entry* entry = fields.find("target"); entry != nullptr && fields.has("target")) {
        if (auto target = parse_deploy_target(out.target, config_.buildmaster.host); !target) {
            reader_.error(entry->value, fields.path("target"), target.error().message);
        }
    } else if (auto target = parse_deploy_target("", config_.buildmaster.host); !target) {
        reader_.error(node,
                      fields.path("target"),
                      "the default target (ssh to root at buildmaster.host): " +
                          target.error().message);
    }
    std::string runtime;
    fields.read("runtime", runtime);
    if (runtime == "docker" || runtime.empty()) {
        out.runtime = Deploy::Runtime::Docker;
    } else if (runtime == "podman") {
        out.runtime = Deploy::Runtime::Podman;
    } else if (runtime == "process") {
        out.runtime = Deploy::Runtime::Process;
    } else {
        std::string message =
            fmt::format("expected docker, podman or process, got \"{}\"", runtime);
        if (auto suggestion = closest_match(runtime, {"docker", "podman", "process"})) {
            message += fmt::format(" (did you mean \"{}\"?)", *suggestion);
        }
        reader_.error(fields.find("runtime")->value, fields.path("runtime"), std::move(message));
        return;
    }
    fields.read("image", out.image);
    fields.read("data_dir", out.data_dir);
    fields.read("binary", out.binary);
    if (fields.has("data_dir") && !is_plain_absolute_path(out.data_dir)) {
        reader_.error(fields.find("data_dir")->value,
                      fields.path("data_dir"),
                      fmt::format("expected an absolute path of letters, digits and ._-+@/ "
                                  "(without ..), got \"{}\"",
                                  out.data_dir));
    }
    if (out.runtime == Deploy::Runtime::Process) {
        fields.forbid({"image"}, "for runtime process (it runs deploy.binary)");
        if (!fields.has("binary")) {
            reader_.error(node, fields.path("binary"), "required for runtime process");
        }
    } else {
        fields.forbid({"binary"},
                      fmt::format("for runtime {} (it runs deploy.image)", to_string(out.runtime)));
        if (!fields.has("image")) {
            reader_.error(node,
                          fields.path("image"),
                          fmt::format("required for runtime {}", to_string(out.runtime)));
        } else if (!is_image_name(out.image)) {
            reader_.error(fields.find("image")->value,
                          fields.path("image"),
                          fmt::format("expected an image name without a tag (the tag is "
                                      "buildmaster.docker_tag), got \"{}\"",
                                      out.image));
        }
    }
}

} // namespace

std::optional<Config> check_document(const YAML::Node& root,
                                     const std::string& origin,
                                     std::vector<Diagnostic>& out,
                                     const std::filesystem::path* base_directory) {
    std::vector<Diagnostic> found;
    Checker checker(origin, found, base_directory);
    auto config = checker.check(root);
    // Report in the order of the text; diagnostics without a position (JSON) keep their order.
    std::ranges::stable_sort(found, [](const Diagnostic& a, const Diagnostic& b) {
        return std::pair(a.line, a.column) < std::pair(b.line, b.column);
    });
    std::ranges::move(found, std::back_inserter(out));
    return config;
}

} // namespace ci::config::detail
