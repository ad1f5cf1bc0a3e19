#pragma once

/// \file
/// The git poller's I/O: a remote's branches and tags, read with `git ls-remote`, for masters
/// that receive no webhooks (a staging master). `poll_events` (scheduler.h) turns two readings
/// into events.

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::sched {

/// Parses `git ls-remote` output: "refs/heads/x" and "refs/tags/y" to commit ids. An annotated
/// tag maps to the commit it points to (its "^{}" line). Other refs are left out.
[[nodiscard]] std::map<std::string, std::string> parse_ls_remote(std::string_view output);

/// Runs `git ls-remote --heads --tags URL` (never prompting for credentials) and parses it.
/// Fails with ProcessSpawn when git cannot run, Timeout after `timeout`, Git when git fails
/// (its message included; credentials in the URL are redacted).
[[nodiscard]] Result<std::map<std::string, std::string>>
list_remote_refs(const std::string& url,
                 std::chrono::milliseconds timeout = std::chrono::seconds(60));

} // namespace ci::sched
