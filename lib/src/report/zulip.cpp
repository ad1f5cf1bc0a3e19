#include "ci/report/zulip.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <limits>
#include <set>
#include <utility>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/core/crypto.h>

#include "core/json.h"

namespace ci::report::zulip {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void write_string(Writer& writer, std::string_view value) {
    writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void write_field(Writer& writer, const char* key, std::string_view value) {
    writer.Key(key);
    write_string(writer, value);
}

void write_field(Writer& writer, const char* key, std::int64_t value) {
    writer.Key(key);
    writer.Int64(value);
}

bool read(const rapidjson::Value& object, const char* key, std::string& out) {
    const auto member = object.FindMember(key);
    if (member == object.MemberEnd() || !member->value.IsString()) {
        return false;
    }
    out.assign(member->value.GetString(), member->value.GetStringLength());
    return true;
}

bool read(const rapidjson::Value& object, const char* key, std::int64_t& out) {
    const auto member = object.FindMember(key);
    if (member == object.MemberEnd() || !member->value.IsInt64()) {
        return false;
    }
    out = member->value.GetInt64();
    return true;
}

// A build's test results: {"passed", "failed", "skipped", "errors", "failed_tests"}.
void write_tests(Writer& writer, const build::TestResults& tests) {
    writer.Key("tests");
    writer.StartObject();
    write_field(writer, "passed", std::int64_t{tests.passed});
    write_field(writer, "failed", std::int64_t{tests.failed});
    write_field(writer, "skipped", std::int64_t{tests.skipped});
    write_field(writer, "errors", std::int64_t{tests.errors});
    writer.Key("failed_tests");
    writer.StartArray();
    for (const auto& name : tests.failed_tests) {
        write_string(writer, name);
    }
    writer.EndArray();
    writer.EndObject();
}

// What write_tests wrote as `object`'s "tests": nullopt when absent (stored by an older
// master: no counts); false when damaged.
bool read_tests(const rapidjson::Value& object, std::optional<build::TestResults>& out) {
    const auto member = object.FindMember("tests");
    if (member == object.MemberEnd()) {
        return true;
    }
    const auto& value = member->value;
    if (!value.IsObject()) {
        return false;
    }
    build::TestResults tests;
    const auto count = [&](const char* key, int& into) {
        std::int64_t number = 0;
        if (!read(value, key, number) || number < 0 || number > std::numeric_limits<int>::max()) {
            return false;
        }
        into = static_cast<int>(number);
        return true;
    };
    if (!count("passed", tests.passed) || !count("failed", tests.failed) ||
        !count("skipped", tests.skipped) || !count("errors", tests.errors)) {
        return false;
    }
    const auto names = value.FindMember("failed_tests");
    if (names == value.MemberEnd() || !names->value.IsArray()) {
        return false;
    }
    for (const auto& name : names->value.GetArray()) {
        if (!name.IsString()) {
            return false;
        }
        tests.failed_tests.emplace_back(name.GetString(), name.GetStringLength());
    }
    out = std::move(tests);
    return true;
}

std::unexpected<Error> damaged(std::string_view what, std::string_view json) {
    return fail(ErrorCode::InvalidArgument,
                fmt::format("a stored Zulip {} is damaged: {}", what, json.substr(0, 200)));
}

// The lines of `text`, without their newlines and carriage returns.
std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        auto line = text.substr(start, end - start);
        while (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        lines.push_back(line);
        start = end + 1;
    }
    return lines;
}

std::string_view trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) {
        return {};
    }
    return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

bool is_separator(std::string_view line) {
    line = trim(line);
    return line.size() >= 10 && (line.find_first_not_of('=') == std::string_view::npos ||
                                 line.find_first_not_of('-') == std::string_view::npos);
}

// A dotted Python name: identifiers joined by dots.
bool is_dotted_name(std::string_view line) {
    if (line.empty() || line.front() == '.' || line.back() == '.' ||
        line.find("..") != std::string_view::npos) {
        return false;
    }
    const auto first = static_cast<unsigned char>(line.front());
    if (std::isdigit(first) != 0) {
        return false;
    }
    return std::ranges::all_of(line, [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return std::isalnum(u) != 0 || c == '_' || c == '.';
    });
}

bool is_failure(BuildResult result) {
    return result == BuildResult::Failure || result == BuildResult::Exception;
}

bool expected(const BuildLine& line, const Settings& settings) {
    return std::ranges::find(settings.failing_builders, line.builder) !=
           settings.failing_builders.end();
}

std::string duration_text(std::chrono::seconds duration) {
    const auto total = std::max<std::int64_t>(0, duration.count());
    if (total >= 3600) {
        return fmt::format("{}h {:02}m", total / 3600, (total % 3600) / 60);
    }
    if (total >= 60) {
        return fmt::format("{}m {:02}s", total / 60, total % 60);
    }
    return fmt::format("{}s", total);
}

// A code fence longer than any run of backticks in `text`, so that the text cannot end it.
std::string fence_for(std::string_view text) {
    std::size_t longest = 0;
    std::size_t run = 0;
    for (const char c : text) {
        run = c == '`' ? run + 1 : 0;
        longest = std::max(longest, run);
    }
    std::string fence(std::max<std::size_t>(3, longest + 1), '`');
    return fence;
}

// Inline code that survives backticks inside it.
std::string code(std::string_view text) {
    const auto fence =
        text.find('`') == std::string_view::npos ? std::string("`") : std::string("`` ");
    const auto close = fence == "`" ? std::string("`") : std::string(" ``");
    return fence + std::string(text) + close;
}

// Cuts `text` to at most `max` bytes without splitting a UTF-8 sequence.
std::string cut(std::string text, std::size_t max) {
    if (text.size() <= max) {
        return text;
    }
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
        --end;
    }
    text.resize(end);
    return text;
}

} // namespace

bool Push::ended() const {
    return std::ranges::all_of(builds,
                               [](const BuildLine& line) { return line.result.has_value(); });
}

Settings settings_from(const config::Config& config) {
    Settings settings;
    const auto& zulip = *config.zulip;
    settings.site = zulip.site;
    settings.email = zulip.user;
    settings.api_key = zulip.password;
    settings.stream = zulip.stream;
    settings.critical_stream = zulip.critical_stream;
    settings.ops_stream = zulip.ops_stream;
    settings.failing_builders = config.failing_builders;
    settings.give_up = zulip.give_up;
    for (const auto& [name, repository] : config.repositories) {
        settings.default_branches.emplace(name, repository.default_branch);
    }
    return settings;
}

std::vector<std::string> failed_tests(std::string_view log, std::size_t max) {
    std::vector<std::string> names;
    std::set<std::string, std::less<>> seen;
    const auto add = [&](std::string_view name) {
        if (!name.empty() && seen.insert(std::string(name)).second) {
            names.emplace_back(name);
        }
    };
    const auto lines = split_lines(log);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const auto line = trim(lines[i]);
        for (const std::string_view prefix : {"FAILED ", "ERROR "}) {
            if (line.starts_with(prefix)) {
                auto id = line.substr(prefix.size());
                id = id.substr(0, id.find(' '));
                if (id.find("::") != std::string_view::npos) {
                    add(id);
                }
            }
        }
        if (line == "[FAIL]" || line == "[ERROR]") {
            // Trial: the names follow the block's last empty line, up to the next separator.
            std::size_t end = i + 1;
            while (end < lines.size() && !is_separator(lines[end]) &&
                   trim(lines[end]) != "[FAIL]" && trim(lines[end]) != "[ERROR]") {
                ++end;
            }
            std::size_t first = end;
            while (first > i + 1 && !trim(lines[first - 1]).empty()) {
                --first;
            }
            for (std::size_t j = first; j < end; ++j) {
                if (is_dotted_name(trim(lines[j]))) {
                    add(trim(lines[j]));
                }
            }
            i = end - 1;
        }
    }
    if (names.size() > max) {
        names.resize(max);
    }
    return names;
}

std::string last_lines(std::string_view text, std::size_t lines, std::size_t max_bytes) {
    while (text.ends_with('\n') || text.ends_with('\r')) {
        text.remove_suffix(1);
    }
    auto all = split_lines(text);
    const auto first = all.size() > lines ? all.size() - lines : 0;
    std::string out;
    for (std::size_t i = first; i < all.size(); ++i) {
        out.append(all[i]);
        if (i + 1 < all.size()) {
            out.push_back('\n');
        }
    }
    if (out.size() > max_bytes) {
        // Keep the end: cut at the first line start inside the last max_bytes.
        auto start = out.size() - max_bytes;
        const auto newline = out.find('\n', start);
        start = newline != std::string::npos && newline + 1 < out.size() ? newline + 1 : start;
        while (start < out.size() && (static_cast<unsigned char>(out[start]) & 0xC0) == 0x80) {
            ++start;
        }
        out.erase(0, start);
    }
    return out;
}

std::string topic_for(const Push& push) {
    auto topic = fmt::format("{} : {}", push.repository, push.branch);
    if (topic.size() > max_topic) {
        topic = cut(std::move(topic), max_topic - 3) + "...";
    }
    return topic;
}

std::string summary(const Push& push, const Settings& settings) {
    std::size_t failed = 0;
    std::size_t failures_shown = 0;
    for (const auto& line : push.builds) {
        if (line.result && is_failure(*line.result)) {
            ++failures_shown;
            if (!expected(line, settings)) {
                ++failed;
            }
        }
    }
    const auto count = push.builds.size();
    std::string out = fmt::format(
        "{} of {} at {}: ",
        code(push.branch),
        push.repository,
        code(push.revision.empty() ? std::string("(unknown)") : push.revision.substr(0, 12)));
    if (failed > 0) {
        out += fmt::format("**{} of {} build{} failed**\n", failed, count, count == 1 ? "" : "s");
    } else {
        out += fmt::format("{} build{} passed\n", count, count == 1 ? "" : "s");
    }
    for (const auto& line : push.builds) {
        const auto result = line.result.value_or(BuildResult::Retry);
        const bool bad = is_failure(result) || result == BuildResult::Cancelled;
        out += fmt::format("* {}: {}",
                           line.builder,
                           bad ? fmt::format("**{}**", to_string(result))
                               : std::string(to_string(result)));
        if (bad && expected(line, settings)) {
            out += " (expected: failing_builders)";
        }
        if (line.build_id != 0) {
            out += fmt::format(" in {}", duration_text(line.duration));
            out += line.url.empty() ? fmt::format(" (build {})", line.build_id)
                                    : fmt::format(" ([build {}]({}))", line.build_id, line.url);
        }
        if (line.built_by != 0) {
            out += " (built with a newer push)";
        }
        if (line.tests) {
            out += ", tests: " + line.tests->summary();
        }
        if (!line.failed_step.empty()) {
            out += fmt::format(", step {}", code(line.failed_step));
        }
        out += '\n';
    }
    // The details of each failure share what is left of Zulip's limit.
    const std::size_t budget =
        failures_shown == 0 ? 0 : std::min<std::size_t>(3000, 8000 / failures_shown);
    for (const auto& line : push.builds) {
        if (!line.result || !is_failure(*line.result) ||
            (line.log_tail.empty() && line.failed_tests.empty())) {
            continue;
        }
        out += fmt::format("\n**{}**", line.builder);
        if (!line.failed_step.empty()) {
            out += fmt::format(", step {}", code(line.failed_step));
        }
        out += ":";
        if (!line.failed_tests.empty()) {
            out += " failed tests ";
            for (std::size_t i = 0; i < line.failed_tests.size(); ++i) {
                out += (i == 0 ? "" : ", ") + code(line.failed_tests[i]);
            }
            if (line.failed_tests.size() >= settings.max_tests) {
                out += " (the first " + std::to_string(settings.max_tests) + ")";
            }
        }
        out += '\n';
        if (!line.log_tail.empty()) {
            const auto tail = last_lines(line.log_tail, settings.tail_lines, budget);
            const auto fence = fence_for(tail);
            out += fmt::format("{}text\n{}\n{}\n", fence, tail, fence);
        }
    }
    if (out.size() > max_content) {
        out = cut(std::move(out), max_content - 10) + "\n(cut)";
    }
    return out;
}

std::vector<Message> messages_for(const Push& push, const Settings& settings) {
    std::vector<Message> out;
    const auto content = summary(push, settings);
    const auto topic = topic_for(push);
    out.push_back(Message{settings.stream, topic, content});
    const auto branch = settings.default_branches.find(push.repository);
    const bool default_branch =
        branch != settings.default_branches.end() && branch->second == push.branch;
    const bool failed = std::ranges::any_of(push.builds, [&](const BuildLine& line) {
        return line.result && is_failure(*line.result) && !expected(line, settings);
    });
    if (default_branch && failed && settings.critical_stream &&
        *settings.critical_stream != settings.stream) {
        out.push_back(Message{*settings.critical_stream, topic, content});
    }
    return out;
}

std::optional<Message> ops_message(const OpsEvent& event, const Settings& settings) {
    if (!settings.ops_stream) {
        return std::nullopt;
    }
    const char* kind = "";
    switch (event.kind) {
    case OpsEvent::Kind::ReporterGaveUp:
        kind = "a reporter gave up";
        break;
    case OpsEvent::Kind::StoreDegraded:
        kind = "the store is degraded";
        break;
    case OpsEvent::Kind::InstanceNotTerminated:
        kind = "an instance did not terminate";
        break;
    case OpsEvent::Kind::InstanceProblem:
        kind = "EC2 workers";
        break;
    }
    return Message{*settings.ops_stream,
                   "libci",
                   cut(fmt::format("**{}**: {}", kind, event.text), max_content)};
}

Result<http::Request> message_request(const Message& message, const Settings& settings) {
    auto request = post_request(settings.site, "/api/v1/messages", "zulip.site");
    if (!request) {
        return request;
    }
    request->headers = {{"Authorization",
                         "Basic " + crypto::base64_encode(settings.email + ":" + settings.api_key)},
                        {"Content-Type", "application/x-www-form-urlencoded"}};
    request->body = fmt::format("type=stream&to={}&topic={}&content={}",
                                http::uri_encode(message.stream),
                                http::uri_encode(message.topic),
                                http::uri_encode(message.content));
    return request;
}

Verdict judge(const http::Response& response) {
    if (response.status >= 200 && response.status < 300) {
        return {};
    }
    const std::string what =
        fmt::format("HTTP {}: {}", response.status, response.body.substr(0, 200));
    if (response.status == 429) {
        const auto after = header_integer(response, "retry-after");
        return {Verdict::Kind::Retry,
                std::chrono::seconds(std::max<std::int64_t>(1, after.value_or(60))),
                what};
    }
    if (response.status >= 500) {
        return {Verdict::Kind::Retry, std::chrono::seconds(0), what};
    }
    return {Verdict::Kind::Drop, std::chrono::seconds(0), what};
}

std::string to_json(const Message& message) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    write_field(writer, "stream", message.stream);
    write_field(writer, "topic", message.topic);
    write_field(writer, "content", message.content);
    writer.EndObject();
    return buffer.GetString();
}

Result<Message> parse_message(std::string_view json) {
    auto parsed = json::parse_object(json);
    Message message;
    if (!parsed) {
        return damaged("message", json);
    }
    const auto& document = *parsed;
    if (!read(document, "stream", message.stream) || !read(document, "topic", message.topic) ||
        !read(document, "content", message.content)) {
        return damaged("message", json);
    }
    return message;
}

std::string to_json(const Push& push) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    write_field(writer, "id", push.id);
    write_field(writer, "repository", push.repository);
    write_field(writer, "branch", push.branch);
    write_field(writer, "revision", push.revision);
    writer.Key("builds");
    writer.StartArray();
    for (const auto& line : push.builds) {
        writer.StartObject();
        write_field(writer, "request", line.request_id);
        write_field(writer, "build", line.build_id);
        write_field(writer, "builder", line.builder);
        if (line.result) {
            write_field(writer, "result", to_string(*line.result));
        }
        write_field(writer, "duration", std::int64_t{line.duration.count()});
        write_field(writer, "url", line.url);
        write_field(writer, "failed_step", line.failed_step);
        write_field(writer, "log_tail", line.log_tail);
        writer.Key("failed_tests");
        writer.StartArray();
        for (const auto& test : line.failed_tests) {
            write_string(writer, test);
        }
        writer.EndArray();
        write_field(writer, "built_by", line.built_by);
        if (line.tests) {
            write_tests(writer, *line.tests);
        }
        writer.EndObject();
    }
    writer.EndArray();
    writer.EndObject();
    return buffer.GetString();
}

Result<Push> parse_push(std::string_view json) {
    auto parsed = json::parse_object(json);
    if (!parsed) {
        return damaged("push", json);
    }
    const auto& document = *parsed;
    Push push;
    if (!read(document, "id", push.id) || !read(document, "repository", push.repository) ||
        !read(document, "branch", push.branch) || !read(document, "revision", push.revision) ||
        !document.HasMember("builds") || !document["builds"].IsArray()) {
        return damaged("push", json);
    }
    for (const auto& item : document["builds"].GetArray()) {
        BuildLine line;
        std::int64_t duration = 0;
        std::string result;
        if (!item.IsObject() || !read(item, "request", line.request_id) ||
            !read(item, "build", line.build_id) || !read(item, "builder", line.builder) ||
            !read(item, "duration", duration) || !read(item, "url", line.url) ||
            !read(item, "failed_step", line.failed_step) ||
            !read(item, "log_tail", line.log_tail) || !read(item, "built_by", line.built_by) ||
            !item.HasMember("failed_tests") || !item["failed_tests"].IsArray() ||
            !read_tests(item, line.tests)) {
            return damaged("push", json);
        }
        line.duration = std::chrono::seconds(duration);
        if (read(item, "result", result)) {
            auto named = parse_build_result(result);
            if (!named) {
                return damaged("push", json);
            }
            line.result = *named;
        }
        for (const auto& test : item["failed_tests"].GetArray()) {
            if (!test.IsString()) {
                return damaged("push", json);
            }
            line.failed_tests.emplace_back(test.GetString(), test.GetStringLength());
        }
        push.builds.push_back(std::move(line));
    }
    return push;
}

namespace {

constexpr std::array<std::pair<BuildEvent, std::string_view>, 4> event_names{{
    {BuildEvent::Requested, "requested"},
    {BuildEvent::Started, "started"},
    {BuildEvent::Finished, "finished"},
    {BuildEvent::Cancelled, "cancelled"},
}};

} // namespace

std::string to_json(const BuildReport& report) {
    rapidjson::StringBuffer buffer;
    Writer writer(buffer);
    writer.StartObject();
    for (const auto& [event, name] : event_names) {
        if (event == report.event) {
            write_field(writer, "event", name);
        }
    }
    write_field(writer, "request", report.request_id);
    write_field(writer, "build", report.build_id);
    write_field(writer, "builder", report.builder);
    write_field(writer, "repository", report.repository);
    write_field(writer, "branch", report.branch);
    write_field(writer, "revision", report.revision);
    if (report.result) {
        write_field(writer, "result", to_string(*report.result));
    }
    write_field(writer, "url", report.url);
    if (report.tests) {
        write_tests(writer, *report.tests);
    }
    writer.Key("properties");
    writer.StartObject();
    for (const auto& [key, value] : report.properties) {
        writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
        write_string(writer, value);
    }
    writer.EndObject();
    write_field(writer,
                "at_ms",
                std::int64_t{std::chrono::duration_cast<std::chrono::milliseconds>(
                                 report.at.time_since_epoch())
                                 .count()});
    writer.EndObject();
    return buffer.GetString();
}

Result<BuildReport> parse_report(std::string_view json) {
    auto parsed = json::parse_object(json);
    if (!parsed) {
        return damaged("build event", json);
    }
    const auto& document = *parsed;
    BuildReport report;
    std::string event;
    std::int64_t at_ms = 0;
    if (!read(document, "event", event) || !read(document, "request", report.request_id) ||
        !read(document, "build", report.build_id) || !read(document, "builder", report.builder) ||
        !read(document, "repository", report.repository) ||
        !read(document, "branch", report.branch) || !read(document, "revision", report.revision) ||
        !read(document, "url", report.url) || !read(document, "at_ms", at_ms) ||
        !document.HasMember("properties") || !document["properties"].IsObject() ||
        !read_tests(document, report.tests)) {
        return damaged("build event", json);
    }
    const auto* named =
        std::ranges::find(event_names, event, [](const auto& e) { return e.second; });
    if (named == event_names.end()) {
        return damaged("build event", json);
    }
    report.event = named->first;
    if (std::string result; read(document, "result", result)) {
        auto value = parse_build_result(result);
        if (!value) {
            return damaged("build event", json);
        }
        report.result = *value;
    }
    for (const auto& member : document["properties"].GetObject()) {
        if (!member.value.IsString()) {
            return damaged("build event", json);
        }
        report.properties.emplace(
            std::string(member.name.GetString(), member.name.GetStringLength()),
            std::string(member.value.GetString(), member.value.GetStringLength()));
    }
    report.at = std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds(at_ms)));
    return report;
}

} // namespace ci::report::zulip
