#include "ci/sched/github.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <ci/core/crypto.h>

#include "core/ascii.h"
#include "core/json.h"
#include "core/utf8.h"
#include "git/ref_name.h"

namespace ci::sched {

namespace {

// "https://user@GitHub.com/o/r.git/" -> "github.com/o/r"; "git@github.com:o/r.git" -> the same.
std::string normalize_url(std::string url) {
    if (const auto scheme = url.find("://"); scheme != std::string::npos) {
        url.erase(0, scheme + 3);
    } else if (const auto colon = url.find(':');
               colon != std::string::npos && url.find('/') > colon) {
        url[colon] = '/'; // scp-like "host:path"
    }
    if (const auto at = url.find('@'); at != std::string::npos && at < url.find('/')) {
        url.erase(0, at + 1);
    }
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    if (url.ends_with(".git")) {
        url.resize(url.size() - 4);
    }
    const auto slash = std::min(url.find('/'), url.size());
    for (std::size_t i = 0; i < slash; ++i) {
        url[i] = ascii_lower(url[i]);
    }
    return url;
}

std::unexpected<Error> bad_payload(std::string_view what) {
    return fail(ErrorCode::InvalidArgument, fmt::format("GitHub push payload: {}", what));
}

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// GitHub writes commit timestamps as "2026-11-24T10:00:00Z" or with an offset "+01:00". One that
// cannot be read, or whose year is outside 1900-2200, is unknown ({}): a WallTime counts
// nanoseconds in 64 bits (years 1678 to 2262), so a year 1013 overflowed it (found by the
// webhook fuzz target).
WallTime parse_timestamp(const std::string& text) {
    std::tm tm{};
    const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == nullptr || tm.tm_year < 0 || tm.tm_year > 300) {
        return {};
    }
    auto when = std::chrono::system_clock::from_time_t(::timegm(&tm));
    // "+HH:MM" read digit by digit: atoi of a long number is undefined.
    if ((*rest == '+' || *rest == '-') && std::strlen(rest) >= 6 && is_digit(rest[1]) &&
        is_digit(rest[2]) && rest[3] == ':' && is_digit(rest[4]) && is_digit(rest[5])) {
        const int hours = (rest[1] - '0') * 10 + (rest[2] - '0');
        const int minutes = (rest[4] - '0') * 10 + (rest[5] - '0');
        const auto offset = std::chrono::hours(hours) + std::chrono::minutes(minutes);
        when += *rest == '+' ? -offset : offset;
    }
    return when;
}

// Reads a payload's values, checking the type of each before it is used: a member that is
// absent or null reads as empty; one of another type is the payload's first problem (a 400),
// never a RapidJSON assertion.
class PayloadReader {
public:
    using Is = bool (rapidjson::Value::*)() const;

    // The member `name` of `object` (itself called `where`), when `is` holds for it.
    const rapidjson::Value* member(const rapidjson::Value& object,
                                   std::string_view where,
                                   const char* name,
                                   Is is,
                                   const char* type_name) {
        if (!object.IsObject()) {
            return nullptr;
        }
        const auto found = object.FindMember(name);
        if (found == object.MemberEnd() || found->value.IsNull()) {
            return nullptr;
        }
        if (!(found->value.*is)()) {
            problem(fmt::format("{} is not {}", path(where, name), type_name));
            return nullptr;
        }
        return &found->value;
    }
    // A string as the payload has it (the ref: refused, not repaired, when it is not UTF-8).
    std::string raw_text(const rapidjson::Value& object, std::string_view where, const char* name) {
        const auto* value = member(object, where, name, &rapidjson::Value::IsString, "a string");
        return value == nullptr ? std::string()
                                : std::string(value->GetString(), value->GetStringLength());
    }
    // A string with what is not UTF-8 replaced (U+FFFD): messages and names go out as JSON,
    // which a strict decoder reads only when it is valid UTF-8.
    std::string text(const rapidjson::Value& object, std::string_view where, const char* name) {
        return to_valid_utf8(raw_text(object, where, name));
    }
    // A string that must name a commit (is_commit_id) when present.
    std::string
    commit_id(const rapidjson::Value& object, std::string_view where, const char* name) {
        auto id = text(object, where, name);
        if (!id.empty() && !git::is_commit_id(id)) {
            problem(path(where, name) + " is not a commit id");
            return {};
        }
        return id;
    }
    const rapidjson::Value*
    object(const rapidjson::Value& parent, std::string_view where, const char* name) {
        return member(parent, where, name, &rapidjson::Value::IsObject, "an object");
    }
    const rapidjson::Value*
    array(const rapidjson::Value& parent, std::string_view where, const char* name) {
        return member(parent, where, name, &rapidjson::Value::IsArray, "a list");
    }
    bool boolean(const rapidjson::Value& object, const char* name) {
        const auto* value = member(object, "", name, &rapidjson::Value::IsBool, "a boolean");
        return value != nullptr && value->GetBool();
    }
    void problem(std::string what) {
        if (!problem_) {
            problem_ = std::move(what);
        }
    }
    [[nodiscard]] const std::optional<std::string>& first_problem() const { return problem_; }

private:
    // "commits[0].author" + "name" -> "commits[0].author.name"; "" + "ref" -> "ref".
    static std::string path(std::string_view where, const char* name) {
        return where.empty() ? std::string(name) : fmt::format("{}.{}", where, name);
    }

    std::optional<std::string> problem_;
};

Change change_from_commit(PayloadReader& read,
                          const rapidjson::Value& commit,
                          const std::string& where,
                          const std::string& repository,
                          const std::string& branch,
                          bool is_tag) {
    Change change;
    change.repository = repository;
    change.branch = branch;
    change.is_tag = is_tag;
    change.revision = read.commit_id(commit, where, "id");
    change.comments = read.text(commit, where, "message");
    if (const auto* author = read.object(commit, where, "author")) {
        const auto author_where = where + ".author";
        const std::string name = read.text(*author, author_where, "name");
        const std::string email = read.text(*author, author_where, "email");
        change.author = email.empty() ? name : fmt::format("{} <{}>", name, email);
    }
    change.when = parse_timestamp(read.text(commit, where, "timestamp"));
    std::vector<std::string> files;
    for (const char* list : {"added", "modified", "removed"}) {
        if (const auto* paths = read.array(commit, where, list)) {
            for (const auto& file : paths->GetArray()) {
                if (!file.IsString()) {
                    read.problem(
                        fmt::format("{}.{} holds a value that is not a string", where, list));
                    continue;
                }
                files.push_back(to_valid_utf8({file.GetString(), file.GetStringLength()}));
            }
        }
    }
    change.files = std::move(files);
    return change;
}

} // namespace

std::string match_repository(const config::Config& config, const std::vector<std::string>& urls) {
    for (const auto& url : urls) {
        const std::string wanted = normalize_url(url);
        for (const auto& [name, repository] : config.repositories) {
            if (!wanted.empty() && normalize_url(repository.url) == wanted) {
                return name;
            }
        }
    }
    return {};
}

namespace {

std::vector<std::string> urls_of(PayloadReader& read, const rapidjson::Document& document) {
    std::vector<std::string> urls;
    if (const auto* repository = read.object(document, "", "repository")) {
        for (const char* name : {"clone_url", "ssh_url", "git_url", "html_url", "url"}) {
            std::string url = read.text(*repository, "repository", name);
            if (!url.empty()) {
                urls.push_back(std::move(url));
            }
        }
    }
    return urls;
}

Result<std::vector<Event>>
events_of(PayloadReader& read, const rapidjson::Document& document, const std::string& repository) {
    const std::string ref = read.raw_text(document, "", "ref");
    if (const auto& problem = read.first_problem()) {
        return bad_payload(*problem);
    }
    if (ref.empty()) {
        return bad_payload("no \"ref\"");
    }
    // Before anything is stored: a ref git would refuse names nothing to build, and one of
    // megabytes made a build spec no worker accepts (issue 14).
    if (auto valid = git::check_ref_format(ref); !valid) {
        return bad_payload(valid.error().message);
    }
    std::vector<Event> events;
    bool is_tag = false;
    std::string name;
    if (ref.starts_with("refs/heads/")) {
        name = ref.substr(11);
    } else if (ref.starts_with("refs/tags/")) {
        name = ref.substr(10);
        is_tag = true;
    } else {
        return events; // notes, pull request refs: nothing to build
    }
    if (read.boolean(document, "deleted")) {
        events.emplace_back(RefDeleted{repository, name, is_tag});
        return events;
    }
    Push push;
    if (const auto* commits = read.array(document, "", "commits")) {
        for (rapidjson::SizeType i = 0; i < commits->Size(); ++i) {
            const auto where = fmt::format("commits[{}]", i);
            const auto& commit = (*commits)[i];
            if (!commit.IsObject()) {
                read.problem(where + " is not an object");
                break;
            }
            push.changes.push_back(
                change_from_commit(read, commit, where, repository, name, is_tag));
        }
    }
    const std::string after = read.commit_id(document, "", "after");
    const auto* head_commit = read.object(document, "", "head_commit");
    if (const auto& problem = read.first_problem()) {
        return bad_payload(*problem);
    }
    if (push.changes.empty() || (!after.empty() && push.changes.back().revision != after)) {
        // A new tag, or a branch moved to an existing commit: the head commit is the change.
        if (head_commit == nullptr) {
            if (after.empty()) {
                return bad_payload("no commits, no head_commit and no \"after\"");
            }
            Change change;
            change.repository = repository;
            change.branch = name;
            change.is_tag = is_tag;
            change.revision = after;
            push.changes.push_back(std::move(change));
        } else {
            push.changes.push_back(
                change_from_commit(read, *head_commit, "head_commit", repository, name, is_tag));
            if (const auto& problem = read.first_problem()) {
                return bad_payload(*problem);
            }
        }
    }
    events.emplace_back(std::move(push));
    return events;
}

Result<rapidjson::Document> parse_object(std::string_view text) {
    auto document = json::parse_object(text);
    if (!document) {
        return bad_payload(document.error().message);
    }
    return document;
}

// Runs `read` over a payload. Every value's type is checked before it is read; should one slip
// through, the RapidJSON assertion it trips is the payload's error, not the end of the master.
template <class Read> auto checked(Read read) -> decltype(read()) {
    try {
        return read();
    } catch (const json::AssertionFailed& error) {
        return bad_payload(error.what());
    }
}

} // namespace

Result<std::vector<std::string>> github_repository_urls(std::string_view json) {
    auto document = parse_object(json);
    if (!document) {
        return fail(document.error());
    }
    return checked([&]() -> Result<std::vector<std::string>> {
        PayloadReader read;
        auto urls = urls_of(read, *document);
        if (const auto& problem = read.first_problem()) {
            return bad_payload(*problem);
        }
        return urls;
    });
}

Result<std::vector<Event>> parse_github_push(std::string_view json, const std::string& repository) {
    auto document = parse_object(json);
    if (!document) {
        return fail(document.error());
    }
    return checked([&] {
        PayloadReader read;
        return events_of(read, *document, repository);
    });
}

Result<GithubPush> parse_github_webhook(std::string_view json, const config::Config& config) {
    auto document = parse_object(json);
    if (!document) {
        return fail(document.error());
    }
    return checked([&]() -> Result<GithubPush> {
        PayloadReader read;
        GithubPush out;
        out.urls = urls_of(read, *document);
        if (const auto& problem = read.first_problem()) {
            return bad_payload(*problem);
        }
        out.repository = match_repository(config, out.urls);
        if (out.repository.empty()) {
            return out;
        }
        auto events = events_of(read, *document, out.repository);
        if (!events) {
            return fail(events.error());
        }
        out.events = std::move(*events);
        return out;
    });
}

Status verify_github_signature(std::string_view secret,
                               std::string_view body,
                               std::string_view signature_header) {
    const auto refuse = [](std::string_view why) {
        return fail(ErrorCode::PermissionDenied, fmt::format("webhook refused: {}", why));
    };
    if (signature_header.empty()) {
        return refuse("no X-Hub-Signature-256 header (the webhook has no secret set?)");
    }
    constexpr std::string_view scheme = "sha256=";
    std::string_view hex = signature_header;
    if (!hex.starts_with(scheme)) {
        return refuse("X-Hub-Signature-256 does not start with 'sha256='");
    }
    hex.remove_prefix(scheme.size());
    if (hex.size() != 64) {
        return refuse("X-Hub-Signature-256 is not 64 hex digits");
    }
    // Lower-case first, so that the comparison below sees one spelling; its length is fixed.
    std::string given(hex);
    ascii_lower_in_place(given);
    if (!std::ranges::all_of(
            given, [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
        return refuse("X-Hub-Signature-256 is not 64 hex digits");
    }
    const std::string expected = crypto::to_hex(crypto::hmac_sha256(secret, body));
    if (!crypto::constant_time_equal(expected, given)) {
        return refuse("X-Hub-Signature-256 does not match the body under the webhook secret");
    }
    return {};
}

} // namespace ci::sched
