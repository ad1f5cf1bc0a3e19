// The JSON form of a Config: how a master receives its configuration (one environment variable
// or a 0600 file) without a YAML file on its disk. Reading converts the JSON DOM to a YAML tree and
// checks it with the same schema as config.yml, so both forms accept exactly the same keys.

#include "core/json.h"

#include <cstdlib>
#include <string>
#include <tuple>
#include <unordered_set>
#include <utility>

#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <ci/config/load.h>

#include "config/file.h"
#include "config/reader.h"
#include "config/schema.h"

namespace ci::config {

namespace {

using Writer = rapidjson::PrettyWriter<rapidjson::StringBuffer>;

void write_string(Writer& writer, std::string_view text) {
    writer.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
}

void write_key(Writer& writer, std::string_view key) {
    writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void write_field(Writer& writer, std::string_view key, std::string_view value) {
    write_key(writer, key);
    write_string(writer, value);
}

void write_field(Writer& writer, std::string_view key, bool value) {
    write_key(writer, key);
    writer.Bool(value);
}

void write_field(Writer& writer, std::string_view key, std::int64_t value) {
    write_key(writer, key);
    writer.Int64(value);
}

void write_field(Writer& writer, std::string_view key, Duration value) {
    write_field(writer, key, static_cast<std::int64_t>(value.count()));
}

void write_field(Writer& writer, std::string_view key, const std::vector<std::string>& values) {
    write_key(writer, key);
    writer.StartArray();
    for (const auto& value : values) {
        write_string(writer, value);
    }
    writer.EndArray();
}

void write_field(Writer& writer,
                 std::string_view key,
                 const std::map<std::string, std::string>& values) {
    write_key(writer, key);
    writer.StartObject();
    for (const auto& [name, value] : values) {
        write_field(writer, name, value);
    }
    writer.EndObject();
}

void write_worker_class(Writer& writer, const WorkerClass& worker_class) {
    writer.StartObject();
    if (const auto* ec2 = std::get_if<Ec2Workers>(&worker_class)) {
        write_field(writer, "ami", ec2->ami);
        write_field(writer, "slaves", std::int64_t{ec2->count});
        write_field(writer, "instance_type", ec2->instance_type);
        write_field(writer, "max_builds", std::int64_t{ec2->max_builds});
        if (ec2->max_spot_price) {
            write_key(writer, "max_spot_price");
            writer.Double(*ec2->max_spot_price);
        }
        write_field(writer, "distribution", ec2->distribution);
        write_field(writer, "user_data_template", ec2->user_data_template);
        write_field(writer, "unreachable_timeout", ec2->unreachable_timeout);
        write_field(writer, "key_name", ec2->key_name);
        write_field(writer, "security_groups", ec2->security_groups);
        write_field(writer, "subnet_id", ec2->subnet_id);
        write_field(writer, "iam_instance_profile", ec2->iam_instance_profile);
        write_field(writer, "tags", ec2->tags);
        write_field(writer, "region", ec2->region);
        write_field(writer, "missing_timeout", ec2->missing_timeout);
        write_field(writer, "build_wait_timeout", ec2->build_wait_timeout);
        if (ec2->max_lifetime) {
            write_field(writer, "max_lifetime", *ec2->max_lifetime);
        }
        write_field(writer, "spot_fallback", ec2->spot_fallback);
        write_field(writer,
                    "idle_action",
                    std::string_view(
                        ec2->idle_action == Ec2Workers::IdleAction::Stop ? "stop" : "terminate"));
        write_field(writer, "stopped_max", std::int64_t{ec2->stopped_max});
        write_field(writer, "worker_files", ec2->worker_files);
    } else if (const auto* fixed = std::get_if<StaticWorkers>(&worker_class)) {
        write_field(writer, "passwords", fixed->passwords);
        write_field(writer, "max_builds", std::int64_t{fixed->max_builds});
        write_field(writer, "distribution", fixed->distribution);
        write_field(writer, "worker_files", fixed->worker_files);
    } else if (const auto* local = std::get_if<LocalWorkers>(&worker_class)) {
        write_field(writer, "local", true);
        write_field(writer, "slaves", std::int64_t{local->count});
        write_field(writer, "max_builds", std::int64_t{local->max_builds});
        if (!local->step_user.empty()) {
            write_field(writer, "step_user", local->step_user);
        }
    }
    writer.EndObject();
}

void write_step(Writer& writer, const Step& step) {
    writer.StartObject();
    write_field(writer, "name", step.name);
    if (step.trigger) {
        // A trigger step runs no command: run, env, workdir and grace would be refused.
        write_key(writer, "trigger");
        writer.StartObject();
        write_field(writer, "builders", step.trigger->builders);
        write_field(writer, "wait", step.trigger->wait);
        writer.EndObject();
    } else if (step.upload) {
        // An upload step runs no command on the worker: run, env and grace would be refused.
        write_key(writer, "upload");
        writer.StartObject();
        write_field(writer, "from", step.upload->from);
        write_field(writer, "to", step.upload->to);
        writer.EndObject();
        if (!step.after_upload.empty()) {
            write_field(writer, "after_upload", step.after_upload);
        }
    } else {
        write_field(writer, "run", step.command);
        write_field(writer, "env", step.env);
        write_field(writer, "workdir", step.workdir);
        write_field(writer, "grace", step.grace);
    }
    if (step.timeout) {
        write_field(writer, "timeout", *step.timeout);
    }
    write_field(writer, "halt_on_failure", step.halt_on_failure);
    write_field(writer, "always_run", step.always_run);
    write_field(writer, "flunk_on_failure", step.flunk_on_failure);
    write_field(writer, "warn_on_failure", step.warn_on_failure);
    write_field(writer, "inactivity_timeout", step.inactivity_timeout);
    if (!step.set_property.empty()) {
        write_field(writer, "set_property", step.set_property);
    }
    if (!step.test_results.empty()) {
        write_field(writer, "test_results", step.test_results);
    }
    if (!step.logfiles.empty()) {
        write_field(writer, "logfiles", step.logfiles);
    }
    writer.EndObject();
}

void write_steps(Writer& writer, const std::vector<Step>& steps) {
    write_key(writer, "steps");
    writer.StartArray();
    for (const auto& step : steps) {
        write_step(writer, step);
    }
    writer.EndArray();
}

void write_builder(Writer& writer, const Builder& builder) {
    writer.StartObject();
    write_field(writer, "workers", builder.workers);
    write_field(writer, "locks", builder.locks);
    if (builder.repository.empty()) {
        // No repository: no key (and no merge_target, which needs one).
        write_field(writer, "timeout", builder.timeout);
        write_steps(writer, builder.steps);
        writer.EndObject();
        return;
    }
    write_field(writer, "repository", builder.repository);
    switch (builder.merge_target.mode) {
    case MergeTarget::Mode::Auto:
        write_field(writer, "merge_target", std::string_view("auto"));
        break;
    case MergeTarget::Mode::None:
        write_field(writer, "merge_target", std::string_view("none"));
        break;
    case MergeTarget::Mode::Branch:
        write_field(writer, "merge_target", builder.merge_target.branch);
        break;
    }
    write_field(writer, "timeout", builder.timeout);
    write_steps(writer, builder.steps);
    writer.EndObject();
}

// Only the keys valid for the scheduler's type are written: the others would be refused on the
// way back in.
void write_scheduler(Writer& writer, const Scheduler& scheduler) {
    writer.StartObject();
    switch (scheduler.type) {
    case Scheduler::Type::Branch:
        write_field(writer, "type", std::string_view("branch"));
        break;
    case Scheduler::Type::Force:
        write_field(writer, "type", std::string_view("force"));
        break;
    case Scheduler::Type::Periodic:
        write_field(writer, "type", std::string_view("periodic"));
        break;
    case Scheduler::Type::Triggerable:
        write_field(writer, "type", std::string_view("triggerable"));
        write_field(writer, "builders", scheduler.builders);
        writer.EndObject();
        return;
    }
    write_field(writer, "builders", scheduler.builders);
    write_field(writer, "collapse_requests", scheduler.collapse_requests);
    if (!scheduler.repository.empty()) {
        write_field(writer, "repository", scheduler.repository);
    }
    if (scheduler.type == Scheduler::Type::Branch) {
        write_field(writer, "branches", scheduler.branches);
        write_field(writer, "tags", scheduler.tags);
        write_field(writer, "important_files", scheduler.important_files);
        write_field(writer, "tree_stable_timer", scheduler.tree_stable_timer);
        write_field(writer, "max_wait", scheduler.max_wait);
    } else if (scheduler.type == Scheduler::Type::Periodic) {
        if (scheduler.interval) {
            write_field(writer, "interval", *scheduler.interval);
        }
        if (!scheduler.at.empty()) {
            write_field(writer, "at", scheduler.at);
        }
        if (!scheduler.branch.empty()) {
            write_field(writer, "branch", scheduler.branch);
        }
    }
    writer.EndObject();
}

template <class T, class WriteOne>
void write_section(Writer& writer,
                   std::string_view key,
                   const std::map<std::string, T>& entries,
                   WriteOne write_one) {
    write_key(writer, key);
    writer.StartObject();
    for (const auto& [name, value] : entries) {
        write_key(writer, name);
        write_one(writer, value);
    }
    writer.EndObject();
}

// A JSON value as the YAML tree the schema checker reads. Scalars become YAML scalars holding
// their text, so "8010" and 8010 are read alike, as they are in YAML. A key written twice in one
// object is reported at `path` (the first one is kept). Recursion is bounded: the text's depth
// was checked before it was parsed.
YAML::Node to_yaml(const rapidjson::Value& value, const std::string& path, detail::Reader& reader) {
    switch (value.GetType()) {
    case rapidjson::kNullType:
        return YAML::Node(YAML::NodeType::Null);
    case rapidjson::kFalseType:
        return YAML::Node("false");
    case rapidjson::kTrueType:
        return YAML::Node("true");
    case rapidjson::kStringType:
        return YAML::Node(std::string(value.GetString(), value.GetStringLength()));
    case rapidjson::kNumberType:
        if (value.IsInt64()) {
            return YAML::Node(fmt::format("{}", value.GetInt64()));
        }
        if (value.IsUint64()) {
            return YAML::Node(fmt::format("{}", value.GetUint64()));
        }
        return YAML::Node(fmt::format("{}", value.GetDouble()));
    case rapidjson::kArrayType: {
        YAML::Node sequence(YAML::NodeType::Sequence);
        std::size_t index = 0;
        for (const auto& item : value.GetArray()) {
            sequence.push_back(to_yaml(item, fmt::format("{}[{}]", path, index++), reader));
        }
        return sequence;
    }
    case rapidjson::kObjectType: {
        YAML::Node map(YAML::NodeType::Map);
        // yaml-cpp looks keys up one by one; a set keeps an object of many keys linear.
        std::unordered_set<std::string> seen;
        for (const auto& member : value.GetObject()) {
            std::string key(member.name.GetString(), member.name.GetStringLength());
            std::string key_path = detail::join_path(path, key);
            if (!seen.insert(key).second) {
                reader.error(YAML::Node(), std::move(key_path), "duplicate key");
                continue;
            }
            map.force_insert(key, to_yaml(member.value, key_path, reader));
        }
        return map;
    }
    }
    return {};
}

} // namespace

std::string to_json(const Config& config) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.SetIndent(' ', 2);
    writer.StartObject();
    if (config.auth) {
        write_key(writer, "auth");
        writer.StartObject();
        if (!config.auth->user.empty()) {
            write_field(writer, "user", config.auth->user);
            write_field(writer, "password", config.auth->password);
        }
        if (!config.auth->users.empty()) {
            write_key(writer, "users");
            writer.StartArray();
            for (const auto& user : config.auth->users) {
                writer.StartObject();
                write_field(writer, "user", user.user);
                write_field(writer, "password_hash", user.password_hash);
                writer.EndObject();
            }
            writer.EndArray();
        }
        write_field(writer,
                    "view",
                    std::string_view(config.auth->view == AuthView::Login ? "login" : "anonymous"));
        writer.EndObject();
    }
    write_key(writer, "buildmaster");
    writer.StartObject();
    write_field(writer, "host", config.buildmaster.host);
    write_field(writer, "docker_tag", config.buildmaster.docker_tag);
    write_field(writer, "web_port", std::int64_t{config.buildmaster.web_port});
    write_field(writer, "worker_port", std::int64_t{config.buildmaster.worker_port});
    write_field(writer, "state", config.buildmaster.state);
    write_field(writer, "url", config.buildmaster.url);
    write_field(writer, "web_hosts", config.buildmaster.web_hosts);
    write_field(writer, "max_retries", std::int64_t{config.buildmaster.max_retries});
    write_field(
        writer, "max_upload_size", static_cast<std::int64_t>(config.buildmaster.max_upload_size));
    write_field(writer, "results_retention", config.buildmaster.results_retention);
    if (!config.buildmaster.trusted_proxies.empty()) {
        write_field(writer, "trusted_proxies", config.buildmaster.trusted_proxies);
    }
    if (!config.buildmaster.tls.enabled) {
        write_field(writer, "tls", false);
    } else if (!config.buildmaster.tls.cert.empty()) {
        write_key(writer, "tls");
        writer.StartObject();
        write_field(writer, "cert", config.buildmaster.tls.cert);
        write_field(writer, "key", config.buildmaster.tls.key);
        writer.EndObject();
    }
    const auto& limits = config.buildmaster.limits;
    write_key(writer, "limits");
    writer.StartObject();
    write_field(writer, "http_connections", std::int64_t{limits.http_connections});
    write_field(
        writer, "http_connections_per_address", std::int64_t{limits.http_connections_per_address});
    write_field(writer, "worker_connections", std::int64_t{limits.worker_connections});
    write_field(writer,
                "worker_connections_per_address",
                std::int64_t{limits.worker_connections_per_address});
    write_field(writer, "http_header_bytes", std::int64_t{limits.http_header_bytes});
    write_field(writer, "body_memory_bytes", std::int64_t{limits.body_memory_bytes});
    write_field(writer, "idle_timeout", limits.idle_timeout);
    write_field(writer, "header_timeout", limits.header_timeout);
    write_field(writer, "request_timeout", limits.request_timeout);
    write_field(writer, "hello_timeout", limits.hello_timeout);
    writer.EndObject();
    writer.EndObject();

    write_key(writer, "github");
    writer.StartObject();
    write_field(writer, "token", config.github.token);
    write_field(writer, "report_status", config.github.report_status);
    write_field(writer, "webhook_secret", config.github.webhook_secret);
    write_field(writer, "api_url", config.github.api_url);
    write_field(writer, "context_prefix", config.github.context_prefix);
    write_field(writer, "strip_prefix", config.github.strip_prefix);
    write_field(writer, "builders", config.github.builders);
    write_field(writer, "give_up", config.github.give_up);
    writer.EndObject();

    if (config.zulip) {
        write_key(writer, "zulip");
        writer.StartObject();
        write_field(writer, "user", config.zulip->user);
        write_field(writer, "password", config.zulip->password);
        write_field(writer, "stream", config.zulip->stream);
        for (const auto& [key, stream] :
             {std::pair{"critical_stream", &config.zulip->critical_stream},
              std::pair{"ops_stream", &config.zulip->ops_stream}}) {
            write_key(writer, key);
            if (*stream) {
                write_string(writer, **stream);
            } else {
                writer.Null();
            }
        }
        write_field(writer, "site", config.zulip->site);
        write_field(writer, "give_up", config.zulip->give_up);
        writer.EndObject();
    }

    write_key(writer, "aws");
    writer.StartObject();
    write_field(writer, "identifier", config.aws.identifier);
    write_field(writer, "secret_identifier", config.aws.secret_identifier);
    write_field(writer, "region", config.aws.region);
    write_field(writer, "image_tags", config.aws.image_tags);
    write_field(writer, "endpoint_url", config.aws.endpoint_url);
    writer.EndObject();

    write_section(writer, "slaves", config.slaves, write_worker_class);
    write_field(writer, "failing_builders", config.failing_builders);
    write_section(
        writer, "repositories", config.repositories, [](Writer& w, const Repository& repository) {
            w.StartObject();
            write_field(w, "url", repository.url);
            write_field(w, "default_branch", repository.default_branch);
            if (repository.poll_interval) {
                write_field(w, "poll_interval", *repository.poll_interval);
            }
            if (!repository.github.empty()) {
                write_field(w, "github", repository.github);
            }
            if (repository.allow_local_submodules) {
                write_field(w, "allow_local_submodules", repository.allow_local_submodules);
            }
            w.EndObject();
        });
    write_section(writer, "locks", config.locks, [](Writer& w, const Lock& lock) {
        w.StartObject();
        write_field(w, "max_count", std::int64_t{lock.max_count});
        write_field(
            w, "scope", std::string_view(lock.scope == Lock::Scope::Worker ? "worker" : "master"));
        w.EndObject();
    });
    write_section(writer, "builders", config.builders, write_builder);
    write_section(writer, "schedulers", config.schedulers, write_scheduler);
    // Only when it says something: a master's JSON need not carry where it was deployed from.
    if (config.deploy != Deploy{}) {
        write_key(writer, "deploy");
        writer.StartObject();
        if (!config.deploy.target.empty()) {
            write_field(writer, "target", config.deploy.target);
        }
        write_field(writer, "runtime", to_string(config.deploy.runtime));
        if (!config.deploy.image.empty()) {
            write_field(writer, "image", config.deploy.image);
        }
        write_field(writer, "data_dir", config.deploy.data_dir);
        if (!config.deploy.binary.empty()) {
            write_field(writer, "binary", config.deploy.binary);
        }
        writer.EndObject();
    }
    writer.EndObject();
    return {buffer.GetString(), buffer.GetSize()};
}

CheckedConfig parse_config_json(std::string_view text, std::string_view origin) {
    static_assert(json::max_depth == max_config_depth);
    CheckedConfig checked;
    if (auto refused = detail::refuse_text(text, origin)) {
        checked.diagnostics.push_back(std::move(*refused));
        return checked;
    }
    // A config's only fraction is max_spot_price, short: exact without full precision (which
    // RapidJSON 1.1.0 gets wrong on some numbers, see core/json.cpp).
    auto document = json::parse_document(text, json::Numbers::Outside);
    if (!document) {
        // A byte offset; turn it into the line and column editors show.
        Diagnostic diagnostic;
        diagnostic.origin = std::string(origin);
        std::tie(diagnostic.line, diagnostic.column) =
            detail::line_and_column(text, document.error().offset);
        diagnostic.message = std::move(document.error().reason);
        checked.diagnostics.push_back(std::move(diagnostic));
        return checked;
    }
    detail::Reader reader(std::string(origin), checked.diagnostics);
    const YAML::Node root = to_yaml(*document, "", reader);
    auto config = detail::check_document(root, std::string(origin), checked.diagnostics);
    if (!reader.has_errors()) {
        checked.config = std::move(config);
    }
    return checked;
}

Result<std::optional<Config>> take_config_from_environment(std::string_view name) {
    const std::string variable(name);
    const char* value = std::getenv(variable.c_str());
    if (value == nullptr) {
        return std::optional<Config>();
    }
    const std::string json(value);
    // Removed before the text is even checked: a bad config must not linger for children either.
    ::unsetenv(variable.c_str());
    auto config = parse_config_json(json, "$" + variable).to_result();
    if (!config) {
        return fail(config.error());
    }
    return std::optional<Config>(std::move(*config));
}

Status write_config_json_file(const std::filesystem::path& path, const Config& config) {
    return detail::write_private_file(path, to_json(config));
}

Result<Config> load_config_json_file(const std::filesystem::path& path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return fail(ErrorCode::PermissionDenied,
                    fmt::format("read config {}: mode {:04o} lets other users see its secrets; "
                                "chmod 600 it",
                                path.string(),
                                info.st_mode & 07777));
    }
    auto text = detail::read_text_file(path, "read config", max_config_size + 1);
    if (!text) {
        return fail(text.error());
    }
    return parse_config_json(*text, path.string()).to_result();
}

} // namespace ci::config
