#include "master/protocol.h"

#include <array>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/config/placeholders.h>
#include <ci/config/worker_files.h>
#include <ci/core/crypto.h>
#include <ci/core/log.h>

#include "core/ascii.h"
#include "core/json.h"

namespace ci::master::protocol {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void field(Writer& w, const char* key, std::string_view value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}
// Without this, a string literal would pick the bool overload.
void field(Writer& w, const char* key, const char* value) {
    field(w, key, std::string_view(value));
}
void field(Writer& w, const char* key, std::int64_t value) {
    w.Key(key);
    w.Int64(value);
}
void field(Writer& w, const char* key, bool value) {
    w.Key(key);
    w.Bool(value);
}
void field(Writer& w, const char* key, const std::map<std::string, std::string>& values) {
    w.Key(key);
    w.StartObject();
    for (const auto& [name, value] : values) {
        w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
        w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    }
    w.EndObject();
}

void write_spec(Writer& w, const build::BuildSpec& spec) {
    field(w, "build", spec.build_id);
    field(w, "builder", spec.builder);
    field(w, "repository", spec.repository);
    field(w, "url", spec.url);
    field(w, "branch", spec.branch);
    field(w, "is_tag", spec.is_tag);
    field(w, "revision", spec.revision);
    if (spec.merge_target) {
        field(w, "merge_target", *spec.merge_target);
    }
    if (spec.target_revision) {
        field(w, "target_revision", *spec.target_revision);
    }
    field(w, "timeout", static_cast<std::int64_t>(spec.timeout.count()));
    field(w, "properties", spec.properties);
    field(w, "master_url", spec.master_url);
    field(w, "results_url", spec.results_url);
    w.Key("steps");
    w.StartArray();
    for (const auto& step : spec.steps) {
        w.StartObject();
        field(w, "name", step.name);
        w.Key("command");
        w.StartArray();
        for (const auto& arg : step.command) {
            w.String(arg.data(), static_cast<rapidjson::SizeType>(arg.size()));
        }
        w.EndArray();
        field(w, "env", step.env);
        field(w, "workdir", step.workdir);
        if (step.timeout) {
            field(w, "timeout", static_cast<std::int64_t>(step.timeout->count()));
        }
        field(w, "grace", static_cast<std::int64_t>(step.grace.count()));
        field(w, "halt_on_failure", step.halt_on_failure);
        if (step.trigger) {
            w.Key("trigger");
            w.StartObject();
            w.Key("builders");
            w.StartArray();
            for (const auto& builder : step.trigger->builders) {
                w.String(builder.data(), static_cast<rapidjson::SizeType>(builder.size()));
            }
            w.EndArray();
            field(w, "wait", step.trigger->wait);
            w.EndObject();
        }
        field(w, "always_run", step.always_run);
        field(w, "flunk_on_failure", step.flunk_on_failure);
        field(w, "warn_on_failure", step.warn_on_failure);
        field(w, "inactivity_timeout", static_cast<std::int64_t>(step.inactivity_timeout.count()));
        field(w, "set_property", step.set_property);
        field(w, "test_results", step.test_results);
        field(w, "logfiles", step.logfiles);
        if (step.upload) {
            w.Key("upload");
            w.StartObject();
            field(w, "from", step.upload->from);
            field(w, "to", step.upload->to);
            w.EndObject();
        }
        w.EndObject();
    }
    w.EndArray();
}

struct Encoder {
    Writer& w;
    void operator()(const Challenge& m) const {
        field(w, "type", "challenge");
        field(w, "nonce", m.nonce);
        field(w, "protocol", std::int64_t{m.protocol});
    }
    void operator()(const Hello& m) const {
        field(w, "type", "hello");
        field(w, "name", m.name);
        field(w, "proof", m.proof);
        field(w, "max_builds", std::int64_t{m.max_builds});
        field(w, "protocol", std::int64_t{m.protocol});
    }
    void operator()(const Welcome& m) const {
        field(w, "type", "welcome");
        field(w, "heartbeat_seconds", std::int64_t{m.heartbeat_seconds});
        if (m.rotate) {
            field(w, "rotate", true);
        }
    }
    void operator()(const Refused& m) const {
        field(w, "type", "refused");
        field(w, "reason", m.reason);
    }
    void operator()(const WorkerFile& m) const {
        field(w, "type", "worker_file");
        field(w, "path", m.path);
        // Hex: any bytes, JSON-safe, and no escaping rules to get wrong.
        field(w,
              "hex",
              crypto::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(m.content.data()),
                                       m.content.size())));
    }
    void operator()(const Heartbeat&) const { field(w, "type", "heartbeat"); }
    void operator()(const Drain&) const { field(w, "type", "drain"); }
    void operator()(const Shutdown&) const { field(w, "type", "shutdown"); }
    void operator()(const Interrupted& m) const {
        field(w, "type", "interrupted");
        field(w, "reason", m.reason);
    }
    void operator()(const StartBuild& m) const {
        field(w, "type", "build");
        write_spec(w, m.spec);
    }
    void operator()(const StopBuild& m) const {
        field(w, "type", "stop");
        field(w, "build", m.build);
    }
    void operator()(const CheckedOut& m) const {
        field(w, "type", "checked_out");
        field(w, "build", m.build);
        field(w, "branch_tip", m.branch_tip);
        field(w, "target_tip", m.target_tip);
        field(w, "merge_commit", m.merge_commit);
    }
    void operator()(const StepStarted& m) const {
        field(w, "type", "step_started");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "name", m.name);
    }
    void operator()(const LogChunk& m) const {
        field(w, "type", "log");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "seq", m.sequence);
        field(w, "size", static_cast<std::int64_t>(m.text.size())); // the text follows the line
    }
    void operator()(const LogFileChunk& m) const {
        field(w, "type", "logfile");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "name", m.name);
        field(w, "seq", m.sequence);
        field(w, "size", static_cast<std::int64_t>(m.text.size())); // the text follows the line
    }
    void operator()(const StepFinished& m) const {
        field(w, "type", "step_finished");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "result", to_string(m.result));
        if (m.exit_code) {
            field(w, "exit_code", std::int64_t{*m.exit_code});
        }
        field(w, "description", m.description);
        if (m.tests) {
            w.Key("tests");
            w.StartObject();
            field(w, "passed", std::int64_t{m.tests->passed});
            field(w, "failed", std::int64_t{m.tests->failed});
            field(w, "skipped", std::int64_t{m.tests->skipped});
            field(w, "errors", std::int64_t{m.tests->errors});
            w.Key("failed_tests");
            w.StartArray();
            for (const auto& name : m.tests->failed_tests) {
                w.String(name.data(), static_cast<rapidjson::SizeType>(name.size()));
            }
            w.EndArray();
            w.EndObject();
        }
        if (!m.properties.empty()) {
            field(w, "properties", m.properties);
        }
    }
    void operator()(const Trigger& m) const {
        field(w, "type", "trigger");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
    }
    void operator()(const Triggered& m) const {
        field(w, "type", "triggered");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "result", to_string(m.result));
        field(w, "description", m.description);
    }
    void operator()(const UploadBegin& m) const {
        field(w, "type", "upload_begin");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "name", m.name);
        w.Key("files");
        w.StartArray();
        for (const auto& file : m.files) {
            w.StartObject();
            field(w, "path", file.path);
            if (file.directory) {
                field(w, "directory", true);
            } else {
                field(w, "size", file.size);
                field(w, "sha256", file.sha256);
            }
            field(w, "mode", std::int64_t{file.mode});
            w.EndObject();
        }
        w.EndArray();
    }
    void operator()(const UploadReady& m) const {
        field(w, "type", "upload_ready");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        w.Key("have");
        w.StartArray();
        for (const auto have : m.have) {
            w.Int64(have);
        }
        w.EndArray();
        if (!m.error.empty()) {
            field(w, "error", m.error);
        }
    }
    void operator()(const UploadChunk& m) const {
        field(w, "type", "upload_chunk");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "file", m.file);
        field(w, "offset", m.offset);
        field(w, "size", static_cast<std::int64_t>(m.data.size())); // the bytes follow the line
    }
    void operator()(const UploadEnd& m) const {
        field(w, "type", "upload_end");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
    }
    void operator()(const UploadDone& m) const {
        field(w, "type", "upload_done");
        field(w, "build", m.build);
        field(w, "step", std::int64_t{m.step});
        field(w, "result", to_string(m.result));
        field(w, "description", m.description);
        field(w, "log", m.log);
    }
    void operator()(const BuildFinished& m) const {
        field(w, "type", "build_finished");
        field(w, "build", m.build);
        field(w, "result", to_string(m.result));
        field(w, "message", m.message);
    }
};

// Reads the fields of one message, remembering the first problem.
class Reader {
public:
    Reader(const rapidjson::Value& object, std::string_view type) : object_(object), type_(type) {}

    std::string text(const char* key, bool required = true) {
        const auto* value = find(key, required);
        if (value == nullptr) {
            return {};
        }
        if (!value->IsString()) {
            problem(fmt::format("\"{}\" is not a string", key));
            return {};
        }
        return {value->GetString(), value->GetStringLength()};
    }
    std::optional<std::string> optional_text(const char* key) {
        if (!object_.HasMember(key)) {
            return std::nullopt;
        }
        return text(key);
    }
    std::int64_t integer(const char* key, bool required = true, std::int64_t fallback = 0) {
        const auto* value = find(key, required);
        if (value == nullptr) {
            return fallback;
        }
        if (!value->IsInt64()) {
            problem(fmt::format("\"{}\" is not an integer", key));
            return fallback;
        }
        return value->GetInt64();
    }
    int small(const char* key, bool required = true, int fallback = 0) {
        const auto value = integer(key, required, fallback);
        if (value < -(1LL << 30) || value > (1LL << 30)) {
            problem(fmt::format("\"{}\" is out of range", key));
            return fallback;
        }
        return static_cast<int>(value);
    }
    BuildResult result(const char* key) {
        const auto name = text(key);
        if (name.empty()) {
            return BuildResult::Exception;
        }
        auto parsed = parse_build_result(name);
        if (!parsed) {
            problem(fmt::format("\"{}\": {}", key, parsed.error().message));
            return BuildResult::Exception;
        }
        return *parsed;
    }
    bool boolean(const char* key, bool fallback) {
        const auto* value = find(key, false);
        if (value == nullptr) {
            return fallback;
        }
        if (!value->IsBool()) {
            problem(fmt::format("\"{}\" is not a boolean", key));
            return fallback;
        }
        return value->GetBool();
    }
    std::map<std::string, std::string> map(const rapidjson::Value& object, const char* key) {
        std::map<std::string, std::string> out;
        const auto member = object.FindMember(key);
        if (member == object.MemberEnd()) {
            return out;
        }
        if (!member->value.IsObject()) {
            problem(fmt::format("\"{}\" is not an object", key));
            return out;
        }
        for (const auto& entry : member->value.GetObject()) {
            if (!entry.value.IsString()) {
                problem(fmt::format(
                    "\"{}.{}\" is not a string",
                    key,
                    log::field({entry.name.GetString(), entry.name.GetStringLength()})));
                continue;
            }
            out.emplace(std::string(entry.name.GetString(), entry.name.GetStringLength()),
                        std::string(entry.value.GetString(), entry.value.GetStringLength()));
        }
        return out;
    }
    const rapidjson::Value& object() const { return object_; }
    const std::optional<std::string>& first_problem() const { return problem_; }
    void problem(std::string text) {
        if (!problem_) {
            problem_ = std::move(text);
        }
    }
    template <class T> Result<Message> done(T message) {
        if (problem_) {
            return fail(ErrorCode::InvalidArgument,
                        fmt::format("worker protocol: \"{}\" message: {}", type_, *problem_));
        }
        return Message(std::move(message));
    }

private:
    const rapidjson::Value* find(const char* key, bool required) {
        const auto member = object_.FindMember(key);
        if (member == object_.MemberEnd()) {
            if (required) {
                problem(fmt::format("\"{}\" is missing", key));
            }
            return nullptr;
        }
        return &member->value;
    }

    const rapidjson::Value& object_;
    std::string_view type_;
    std::optional<std::string> problem_;
};

// The list of strings `object[key]` into `out`; false (and a problem for `r`, naming `what`)
// when it is missing or not a list. Items that are not strings are problems too.
bool read_strings(Reader& r,
                  const rapidjson::Value& object,
                  const char* key,
                  std::string_view what,
                  std::vector<std::string>& out) {
    const auto list = object.FindMember(key);
    if (list == object.MemberEnd() || !list->value.IsArray()) {
        r.problem(fmt::format("{} is missing or not a list", what));
        return false;
    }
    for (const auto& item : list->value.GetArray()) {
        if (!item.IsString()) {
            r.problem(fmt::format("{} holds something that is not a string", what));
            continue;
        }
        out.emplace_back(item.GetString(), item.GetStringLength());
    }
    return true;
}

void read_trigger(Reader& r, const rapidjson::Value& value, config::Trigger& out) {
    if (!value.IsObject()) {
        r.problem("a step's \"trigger\" is not an object");
        return;
    }
    if (!read_strings(r, value, "builders", "a trigger's \"builders\"", out.builders)) {
        return;
    }
    Reader fields(value, "build");
    out.wait = fields.boolean("wait", false);
    if (const auto& problem = fields.first_problem()) {
        r.problem(*problem);
    }
}

build::BuildSpec read_spec(Reader& r) {
    build::BuildSpec spec;
    spec.build_id = r.integer("build");
    spec.builder = r.text("builder");
    spec.repository = r.text("repository");
    spec.url = r.text("url");
    spec.branch = r.text("branch");
    spec.is_tag = r.boolean("is_tag", false);
    spec.revision = r.text("revision", false);
    spec.merge_target = r.optional_text("merge_target");
    spec.target_revision = r.optional_text("target_revision");
    spec.timeout = std::chrono::seconds(r.integer("timeout", false, 3600));
    spec.properties = r.map(r.object(), "properties");
    spec.master_url = r.text("master_url", false);
    spec.results_url = r.text("results_url", false);
    const auto steps = r.object().FindMember("steps");
    if (steps == r.object().MemberEnd() || !steps->value.IsArray()) {
        r.problem("\"steps\" is missing or not a list");
        return spec;
    }
    for (const auto& item : steps->value.GetArray()) {
        if (!item.IsObject()) {
            r.problem("a step is not an object");
            continue;
        }
        Reader s(item, "build");
        build::StepSpec step;
        step.name = s.text("name");
        if (!read_strings(r, item, "command", "a step's \"command\"", step.command)) {
            continue;
        }
        step.env = s.map(item, "env");
        step.workdir = s.text("workdir", false);
        if (item.HasMember("timeout")) {
            step.timeout = std::chrono::seconds(s.integer("timeout"));
        }
        step.grace = std::chrono::seconds(s.integer("grace", false, 10));
        step.halt_on_failure = s.boolean("halt_on_failure", true);
        if (const auto trigger = item.FindMember("trigger"); trigger != item.MemberEnd()) {
            read_trigger(s, trigger->value, step.trigger.emplace());
        }
        step.always_run = s.boolean("always_run", false);
        step.flunk_on_failure = s.boolean("flunk_on_failure", true);
        step.warn_on_failure = s.boolean("warn_on_failure", false);
        step.inactivity_timeout = std::chrono::seconds(s.integer("inactivity_timeout", false, 0));
        step.set_property = s.text("set_property", false);
        step.test_results = s.text("test_results", false);
        step.logfiles = s.map(item, "logfiles");
        if (const auto upload = item.FindMember("upload"); upload != item.MemberEnd()) {
            if (upload->value.IsObject()) {
                Reader u(upload->value, "build");
                step.upload = config::Upload{u.text("from"), u.text("to")};
                if (const auto& problem = u.first_problem()) {
                    s.problem("upload: " + *problem);
                }
            } else {
                s.problem("a step's \"upload\" is not an object");
            }
        }
        if (const auto& problem = s.first_problem()) {
            r.problem(*problem);
        }
        spec.steps.push_back(std::move(step));
    }
    return spec;
}

// One reader per message type: the type's fields, in the order encode() writes them.
Result<Message> read_challenge(Reader& r) {
    Challenge m;
    m.nonce = r.text("nonce");
    m.protocol = r.small("protocol");
    return r.done(std::move(m));
}

Result<Message> read_hello(Reader& r) {
    Hello m;
    m.name = r.text("name");
    m.proof = r.text("proof");
    m.max_builds = r.small("max_builds", false, 1);
    m.protocol = r.small("protocol", false, version);
    return r.done(std::move(m));
}

Result<Message> read_worker_file(Reader& r) {
    WorkerFile m;
    m.path = r.text("path");
    const std::string hex = r.text("hex");
    if (hex.size() % 2 != 0 || hex.size() / 2 > config::max_worker_file_size) {
        r.problem(fmt::format("\"hex\" is not an even number of digits for at most {} bytes",
                              config::max_worker_file_size));
        return r.done(std::move(m));
    }
    m.content.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
        const int high = ascii_hex_value(hex[i]);
        const int low = ascii_hex_value(hex[i + 1]);
        if (high < 0 || low < 0) {
            r.problem("\"hex\" holds a character that is not a hex digit");
            m.content.clear();
            break;
        }
        m.content.push_back(static_cast<char>((high << 4) | low));
    }
    return r.done(std::move(m));
}

Result<Message> read_welcome(Reader& r) {
    Welcome m;
    m.heartbeat_seconds = r.small("heartbeat_seconds");
    m.rotate = r.boolean("rotate", false);
    return r.done(m);
}

Result<Message> read_checked_out(Reader& r) {
    CheckedOut m;
    m.build = r.integer("build");
    m.branch_tip = r.text("branch_tip", false);
    m.target_tip = r.text("target_tip", false);
    m.merge_commit = r.text("merge_commit", false);
    return r.done(std::move(m));
}

Result<Message> read_step_started(Reader& r) {
    StepStarted m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.name = r.text("name");
    return r.done(std::move(m));
}

// The size of the bytes after a chunk's line, checked; `text` sized to be filled by the reader
// (following_bytes()).
void read_size(Reader& r, std::string& text) {
    const auto size = r.integer("size");
    if (size < 0 || static_cast<std::uint64_t>(size) > max_line) {
        r.problem(fmt::format("\"size\" is not between 0 and {}", max_line));
    } else {
        text.resize(static_cast<std::size_t>(size));
    }
}

Result<Message> read_log(Reader& r) {
    LogChunk m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.sequence = r.integer("seq");
    read_size(r, m.text);
    return r.done(std::move(m));
}

Result<Message> read_logfile(Reader& r) {
    LogFileChunk m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.name = r.text("name");
    if (!m.name.empty() && !config::valid_property_name(m.name)) {
        r.problem("\"name\" is not 1 to 64 characters of [A-Za-z0-9_.-]");
    }
    m.sequence = r.integer("seq");
    read_size(r, m.text);
    return r.done(std::move(m));
}

Result<Message> read_step_finished(Reader& r) {
    StepFinished m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.result = r.result("result");
    if (r.object().HasMember("exit_code")) {
        m.exit_code = r.small("exit_code");
    }
    m.description = r.text("description", false);
    if (const auto tests = r.object().FindMember("tests"); tests != r.object().MemberEnd()) {
        if (!tests->value.IsObject()) {
            r.problem("\"tests\" is not an object");
        } else {
            Reader t(tests->value, "step_finished");
            build::TestResults read;
            read.passed = t.small("passed");
            read.failed = t.small("failed");
            read.skipped = t.small("skipped");
            read.errors = t.small("errors");
            const auto names = tests->value.FindMember("failed_tests");
            if (names != tests->value.MemberEnd() && names->value.IsArray()) {
                for (const auto& name : names->value.GetArray()) {
                    if (!name.IsString() || read.failed_tests.size() >= build::max_failed_tests) {
                        t.problem("\"tests.failed_tests\" holds a non-string or too many names");
                        break;
                    }
                    read.failed_tests.emplace_back(name.GetString(), name.GetStringLength());
                }
            } else if (names != tests->value.MemberEnd()) {
                t.problem("\"tests.failed_tests\" is not a list");
            }
            if (const auto& problem = t.first_problem()) {
                r.problem("tests: " + *problem);
            }
            m.tests = std::move(read);
        }
    }
    m.properties = r.map(r.object(), "properties");
    return r.done(std::move(m));
}

Result<Message> read_triggered(Reader& r) {
    Triggered m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.result = r.result("result");
    m.description = r.text("description", false);
    return r.done(std::move(m));
}

Result<Message> read_upload_begin(Reader& r) {
    UploadBegin m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.name = r.text("name");
    const auto files = r.object().FindMember("files");
    if (files == r.object().MemberEnd() || !files->value.IsArray()) {
        r.problem("\"files\" is missing or not a list");
        return r.done(std::move(m));
    }
    m.files.reserve(files->value.Size());
    for (const auto& item : files->value.GetArray()) {
        if (!item.IsObject()) {
            r.problem("a file is not an object");
            break;
        }
        Reader f(item, "upload_begin");
        UploadFile file;
        file.path = f.text("path");
        file.directory = f.boolean("directory", false);
        if (!file.directory) {
            file.size = f.integer("size");
            file.sha256 = f.text("sha256");
            if (file.size < 0) {
                f.problem("a file's \"size\" is negative");
            }
        }
        file.mode = f.small("mode", false, 0644);
        if (const auto& problem = f.first_problem()) {
            r.problem(*problem);
            break;
        }
        m.files.push_back(std::move(file));
    }
    return r.done(std::move(m));
}

Result<Message> read_upload_ready(Reader& r) {
    UploadReady m;
    m.build = r.integer("build");
    m.step = r.small("step");
    const auto have = r.object().FindMember("have");
    if (have == r.object().MemberEnd() || !have->value.IsArray()) {
        r.problem("\"have\" is missing or not a list");
        return r.done(std::move(m));
    }
    for (const auto& item : have->value.GetArray()) {
        if (!item.IsInt64() || item.GetInt64() < 0) {
            r.problem("\"have\" holds something that is not a size");
            break;
        }
        m.have.push_back(item.GetInt64());
    }
    m.error = r.text("error", false);
    return r.done(std::move(m));
}

Result<Message> read_upload_chunk(Reader& r) {
    UploadChunk m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.file = r.integer("file");
    m.offset = r.integer("offset");
    if (m.file < 0 || m.offset < 0) {
        r.problem(R"("file" or "offset" is negative)");
    }
    const auto size = r.integer("size");
    if (size < 0 || static_cast<std::uint64_t>(size) > upload_chunk) {
        r.problem(fmt::format("\"size\" is not between 0 and {}", upload_chunk));
    } else {
        m.data.resize(static_cast<std::size_t>(size)); // filled by the reader: following_bytes()
    }
    return r.done(std::move(m));
}

Result<Message> read_upload_done(Reader& r) {
    UploadDone m;
    m.build = r.integer("build");
    m.step = r.small("step");
    m.result = r.result("result");
    m.description = r.text("description", false);
    m.log = r.text("log", false);
    return r.done(std::move(m));
}

Result<Message> read_build_finished(Reader& r) {
    BuildFinished m;
    m.build = r.integer("build");
    m.result = r.result("result");
    m.message = r.text("message", false);
    return r.done(std::move(m));
}

// The text after a chunk's line (a const or mutable message); nullptr for other messages.
template <class M> auto* text_after(M& message) {
    decltype(&std::get_if<LogChunk>(&message)->text) out = nullptr;
    if (auto* chunk = std::get_if<LogChunk>(&message)) {
        out = &chunk->text;
    } else if (auto* file = std::get_if<LogFileChunk>(&message)) {
        out = &file->text;
    } else if (auto* upload = std::get_if<UploadChunk>(&message)) {
        out = &upload->data;
    }
    return out;
}

using MessageReader = Result<Message> (*)(Reader&);
constexpr auto readers = std::to_array<std::pair<std::string_view, MessageReader>>({
    {"challenge", read_challenge},
    {"hello", read_hello},
    {"welcome", read_welcome},
    {"refused", [](Reader& r) { return r.done(Refused{r.text("reason")}); }},
    {"worker_file", read_worker_file},
    {"heartbeat", [](Reader& r) { return r.done(Heartbeat{}); }},
    {"drain", [](Reader& r) { return r.done(Drain{}); }},
    {"shutdown", [](Reader& r) { return r.done(Shutdown{}); }},
    {"interrupted", [](Reader& r) { return r.done(Interrupted{r.text("reason", false)}); }},
    {"build", [](Reader& r) { return r.done(StartBuild{read_spec(r)}); }},
    {"stop", [](Reader& r) { return r.done(StopBuild{r.integer("build")}); }},
    {"checked_out", read_checked_out},
    {"step_started", read_step_started},
    {"log", read_log},
    {"logfile", read_logfile},
    {"step_finished", read_step_finished},
    {"build_finished", read_build_finished},
    {"trigger", [](Reader& r) { return r.done(Trigger{r.integer("build"), r.small("step")}); }},
    {"triggered", read_triggered},
    {"upload_begin", read_upload_begin},
    {"upload_ready", read_upload_ready},
    {"upload_chunk", read_upload_chunk},
    {"upload_end",
     [](Reader& r) { return r.done(UploadEnd{r.integer("build"), r.small("step")}); }},
    {"upload_done", read_upload_done},
});

} // namespace

StepFinished step_finished(std::int64_t build, int step, const build::StepOutcome& outcome) {
    return StepFinished{build,
                        step,
                        outcome.result,
                        outcome.exit_code,
                        outcome.description,
                        outcome.tests,
                        outcome.properties};
}

std::string encode(const Message& message) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    std::visit(Encoder{writer}, message);
    writer.EndObject();
    const auto* text = text_after(message);
    std::string line;
    line.reserve(buffer.GetSize() + 1 + (text != nullptr ? text->size() : 0));
    line.append(buffer.GetString(), buffer.GetSize());
    line += '\n';
    if (text != nullptr) {
        line += *text;
    }
    return line;
}

std::string* following_bytes(Message& message) {
    return text_after(message);
}

Result<Message> decode(std::string_view line) {
    if (!line.empty() && line.back() == '\n') {
        line.remove_suffix(1);
    }
    auto document = json::parse_object(line);
    if (!document) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("worker protocol: a line is not a JSON object: {}",
                                document.error().message));
    }
    const auto type_member = document->FindMember("type");
    if (type_member == document->MemberEnd() || !type_member->value.IsString()) {
        return fail(ErrorCode::InvalidArgument, "worker protocol: a message has no \"type\"");
    }
    const std::string_view type(type_member->value.GetString(),
                                type_member->value.GetStringLength());
    Reader r(*document, type);
    for (const auto& [name, read] : readers) {
        if (name == type) {
            // Every value's type is checked before it is read; should one slip through, the
            // assertion it trips is this message's error, not the end of the process.
            try {
                return read(r);
            } catch (const json::AssertionFailed& error) {
                return fail(ErrorCode::InvalidArgument,
                            fmt::format("worker protocol: \"{}\" message: {}", type, error.what()));
            }
        }
    }
    return fail(ErrorCode::InvalidArgument,
                fmt::format("worker protocol: unknown message type \"{}\"", log::field(type)));
}

std::string bound_challenge(std::string_view nonce, std::string_view exporter) {
    if (exporter.empty()) {
        return std::string(nonce);
    }
    return fmt::format("{}:{}", nonce, exporter);
}

std::string secret_key(std::string_view secret) {
    return crypto::to_hex(crypto::sha256(secret));
}

std::string proof_with_key(std::string_view key, std::string_view nonce) {
    return crypto::to_hex(crypto::hmac_sha256(key, nonce));
}

std::string proof(std::string_view secret, std::string_view nonce) {
    return proof_with_key(secret_key(secret), nonce);
}

std::string next_secret_with_key(std::string_view key, std::string_view nonce) {
    return crypto::to_hex(crypto::hmac_sha256(key, std::string("next:").append(nonce)));
}

std::string next_secret(std::string_view secret, std::string_view nonce) {
    return next_secret_with_key(secret_key(secret), nonce);
}

} // namespace ci::master::protocol
