#include "ci/report/github.h"

#include <algorithm>
#include <array>
#include <fnmatch.h>
#include <utility>

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "core/json.h"

namespace ci::report::github {

namespace {

constexpr std::array<std::string_view, 4> state_names{"pending", "success", "failure", "error"};

bool expected_failure(const BuildReport& report, const Settings& settings) {
    if (std::ranges::find(settings.failing_builders, report.builder) ==
        settings.failing_builders.end()) {
        return false;
    }
    // The old deployment's property was report-expected-failures.
    return !std::ranges::any_of(
        std::array{"report_expected_failures", "report-expected-failures"}, [&](const char* key) {
            const auto found = report.properties.find(key);
            return found != report.properties.end() && found->second == "true";
        });
}

// "3 of 120 tests failed (a, b, …)" or "118 tests passed, 2 skipped", put after `text` (with
// `separator`) within max_description bytes (so characters); `text` alone when nothing fits.
std::string
with_tests(std::string text, std::string_view separator, const build::TestResults& tests) {
    const auto plural = [](int n) { return n == 1 ? "" : "s"; };
    const int bad = tests.failed + tests.errors;
    std::string counts;
    if (bad > 0) {
        counts = fmt::format("{} of {} test{} failed", bad, tests.total(), plural(tests.total()));
    } else {
        counts = fmt::format("{} test{} passed", tests.passed, plural(tests.passed));
        if (tests.skipped > 0) {
            counts += fmt::format(", {} skipped", tests.skipped);
        }
    }
    auto out = fmt::format("{}{}{}", text, separator, counts);
    if (out.size() > max_description) {
        return text;
    }
    // The most names that fit, whole, in the order the runner gave them.
    const auto& names = tests.failed_tests;
    std::string listed;
    std::string best;
    for (std::size_t i = 0; i < names.size(); ++i) {
        listed += (i == 0 ? "" : ", ") + names[i];
        const bool all = i + 1 == names.size() && std::cmp_equal(names.size(), bad);
        auto candidate = fmt::format("{} ({}{})", out, listed, all ? "" : ", …");
        if (candidate.size() <= max_description) {
            best = std::move(candidate);
        }
        if (listed.size() > max_description) {
            break;
        }
    }
    return best.empty() ? out : best;
}

// The state and description a finished build reports; nullopt for retry.
std::optional<std::pair<State, std::string>> finished_state(BuildResult result) {
    switch (result) {
    case BuildResult::Success:
        return std::pair(State::Success, std::string("Build succeeded"));
    case BuildResult::Warnings:
        // As the old deployment showed Buildbot's WARNINGS: green, with a word of warning.
        return std::pair(State::Success, std::string("Build succeeded with warnings"));
    case BuildResult::Failure:
        return std::pair(State::Failure, std::string("Build failed"));
    case BuildResult::Exception:
        return std::pair(State::Error, std::string("Build failed: an infrastructure error"));
    case BuildResult::Cancelled:
        return std::pair(State::Error, std::string("Build cancelled"));
    case BuildResult::Retry:
        break;
    }
    return std::nullopt;
}

} // namespace

std::string_view to_string(State state) noexcept {
    return state_names.at(static_cast<std::size_t>(state));
}

Settings settings_from(const config::Config& config) {
    Settings settings;
    settings.api_url = config.github.api_url;
    settings.token = config.github.token;
    settings.context_prefix = config.github.context_prefix;
    settings.strip_prefix = config.github.strip_prefix;
    settings.builders = config.github.builders;
    settings.failing_builders = config.failing_builders;
    settings.give_up = config.github.give_up;
    for (const auto& [name, repository] : config.repositories) {
        if (auto owner_repo = config::github_repository(repository); !owner_repo.empty()) {
            settings.repositories.emplace(name, std::move(owner_repo));
        }
    }
    return settings;
}

std::string context_for(std::string_view builder, const Settings& settings) {
    if (!settings.strip_prefix.empty() && builder.starts_with(settings.strip_prefix) &&
        builder.size() > settings.strip_prefix.size()) {
        builder.remove_prefix(settings.strip_prefix.size());
    }
    return settings.context_prefix + std::string(builder);
}

bool reports_builder(std::string_view builder, const Settings& settings) {
    if (settings.builders.empty()) {
        return true;
    }
    const std::string name(builder);
    return std::ranges::any_of(settings.builders, [&](const std::string& glob) {
        return ::fnmatch(glob.c_str(), name.c_str(), 0) == 0;
    });
}

std::optional<CommitStatus> status_for(const BuildReport& report, const Settings& settings) {
    const auto repository = settings.repositories.find(report.repository);
    if (repository == settings.repositories.end() || report.revision.empty() ||
        !reports_builder(report.builder, settings) || expected_failure(report, settings)) {
        return std::nullopt;
    }
    CommitStatus status;
    status.repository = repository->second;
    status.sha = report.revision;
    status.context = context_for(report.builder, settings);
    switch (report.event) {
    case BuildEvent::Requested:
        status.description = "Build requested";
        break;
    case BuildEvent::Started:
        status.target_url = report.url;
        status.description = "Build started";
        break;
    case BuildEvent::Finished:
    case BuildEvent::Cancelled: {
        const auto finished = finished_state(report.result.value_or(BuildResult::Retry));
        if (!finished) {
            return std::nullopt; // retry: the status stays pending, the request runs again
        }
        status.state = finished->first;
        status.description = finished->second;
        if (report.tests && report.tests->total() > 0) {
            // "Build failed: an infrastructure error; 3 of 120 tests failed"
            const bool said = status.description.find(':') != std::string::npos;
            status.description =
                with_tests(std::move(status.description), said ? "; " : ": ", *report.tests);
        }
        status.target_url = report.url;
        break;
    }
    }
    if (status.description.size() > max_description) {
        status.description.resize(max_description);
    }
    return status;
}

Result<http::Request> status_request(const CommitStatus& status, const Settings& settings) {
    auto request = post_request(settings.api_url,
                                fmt::format("/repos/{}/statuses/{}",
                                            http::uri_encode(status.repository, true),
                                            http::uri_encode(status.sha)),
                                "github.api_url");
    if (!request) {
        return request;
    }
    request->headers = {{"Authorization", "token " + settings.token},
                        {"Accept", "application/vnd.github+json"},
                        {"X-GitHub-Api-Version", "2022-11-28"},
                        {"Content-Type", "application/json"}};
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    writer.Key("state");
    const auto state = to_string(status.state);
    writer.String(state.data(), static_cast<rapidjson::SizeType>(state.size()));
    if (!status.target_url.empty()) {
        writer.Key("target_url");
        writer.String(status.target_url.c_str(),
                      static_cast<rapidjson::SizeType>(status.target_url.size()));
    }
    writer.Key("description");
    writer.String(status.description.c_str(),
                  static_cast<rapidjson::SizeType>(status.description.size()));
    writer.Key("context");
    writer.String(status.context.c_str(), static_cast<rapidjson::SizeType>(status.context.size()));
    writer.EndObject();
    request->body = buffer.GetString();
    return request;
}

std::string to_json(const CommitStatus& status) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    writer.StartObject();
    const auto field = [&](const char* key, std::string_view value) {
        writer.Key(key);
        writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
    };
    field("repository", status.repository);
    field("sha", status.sha);
    field("state", to_string(status.state));
    field("target_url", status.target_url);
    field("description", status.description);
    field("context", status.context);
    writer.EndObject();
    return buffer.GetString();
}

Result<CommitStatus> parse_status(std::string_view json) {
    const auto bad = [&] {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("a stored commit status is damaged: {}", json.substr(0, 200)));
    };
    auto parsed = json::parse_object(json);
    if (!parsed) {
        return bad();
    }
    const auto& document = *parsed;
    CommitStatus status;
    const auto text = [&](const char* key, std::string& out) {
        const auto member = document.FindMember(key);
        if (member == document.MemberEnd() || !member->value.IsString()) {
            return false;
        }
        out.assign(member->value.GetString(), member->value.GetStringLength());
        return true;
    };
    std::string state;
    if (!text("repository", status.repository) || !text("sha", status.sha) ||
        !text("state", state) || !text("target_url", status.target_url) ||
        !text("description", status.description) || !text("context", status.context)) {
        return bad();
    }
    const auto index =
        std::ranges::distance(state_names.begin(), std::ranges::find(state_names, state));
    if (index == std::ranges::ssize(state_names)) {
        return bad();
    }
    status.state = static_cast<State>(index);
    return status;
}

Verdict judge(const http::Response& response, WallTime now) {
    if (response.status >= 200 && response.status < 300) {
        return {};
    }
    const std::string what =
        fmt::format("HTTP {}: {}", response.status, response.body.substr(0, 200));
    if (response.status == 403 || response.status == 429) {
        if (const auto after = header_integer(response, "retry-after")) {
            return {Verdict::Kind::Retry,
                    std::chrono::seconds(std::max<std::int64_t>(1, *after)),
                    what};
        }
        const auto remaining = header_integer(response, "x-ratelimit-remaining");
        const auto reset = header_integer(response, "x-ratelimit-reset");
        if (remaining == 0 && reset) {
            const auto epoch =
                std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch());
            return {Verdict::Kind::Retry,
                    std::chrono::seconds(std::max<std::int64_t>(1, *reset - epoch.count())),
                    what};
        }
        // A secondary rate limit may say so only in its message: wait a minute, as GitHub asks.
        if (response.status == 429 || response.body.find("rate limit") != std::string::npos) {
            return {Verdict::Kind::Retry, std::chrono::seconds(60), what};
        }
    }
    if (response.status >= 500) {
        return {Verdict::Kind::Retry, std::chrono::seconds(0), what};
    }
    return {Verdict::Kind::Drop, std::chrono::seconds(0), what};
}

} // namespace ci::report::github
