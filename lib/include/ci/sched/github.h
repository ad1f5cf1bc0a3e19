#pragma once

/// \file
/// GitHub push webhook payloads as scheduler events: branch pushes with their commits and changed
/// files, tag pushes, and deletions. Pure: JSON text in, events out. The web server checks the
/// payload's signature (verify_github_signature) before anything here runs.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/error.h>
#include <ci/sched/scheduler.h>

namespace ci::sched {

/// The repository of `config.repositories` a URL designates, comparing URLs without scheme,
/// user, ".git" suffix, trailing '/' and case of the host ("git@github.com:o/r.git" and
/// "https://github.com/o/r" are the same). Empty when none matches.
[[nodiscard]] std::string match_repository(const config::Config& config,
                                           const std::vector<std::string>& urls);

/// The events of a `push` payload: a Push with one Change per commit (oldest first; added,
/// modified and removed files; the head commit when `commits` is empty, as for a new tag), or a
/// RefDeleted. Refs other than branches and tags give no event. `repository` is the config's
/// name for the payload's repository (see match_repository). Fails with InvalidArgument naming
/// the missing or mistyped field; a payload of another kind gives no events.
[[nodiscard]] Result<std::vector<Event>> parse_github_push(std::string_view json,
                                                           const std::string& repository);

/// The URLs a payload gives for its repository (clone_url, ssh_url, git_url, html_url), for
/// match_repository. Fails with InvalidArgument when the JSON does not parse.
[[nodiscard]] Result<std::vector<std::string>> github_repository_urls(std::string_view json);

/// A push webhook read once: its repository's URLs, the config's repository they designate
/// (empty when none does: then no events), and its events (as parse_github_push gives them).
struct GithubPush {
    std::vector<std::string> urls;
    std::string repository;
    std::vector<Event> events;
};

/// github_repository_urls, match_repository and parse_github_push in one parse of the JSON
/// (the webhook's hot path). Fails like parse_github_push.
[[nodiscard]] Result<GithubPush> parse_github_webhook(std::string_view json,
                                                      const config::Config& config);

/// Checks a webhook's X-Hub-Signature-256 header ("sha256=" and the hex HMAC-SHA256 of the raw
/// body under the webhook secret), comparing in constant time. Fails with PermissionDenied, never
/// quoting the secret: the header is missing, malformed, or signs something else.
[[nodiscard]] Status verify_github_signature(std::string_view secret,
                                             std::string_view body,
                                             std::string_view signature_header);

} // namespace ci::sched
