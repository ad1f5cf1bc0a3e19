#pragma once

/// \file
/// A remote's branches and tags, read through libgit2 (no `git` process), with the credentials
/// a checkout uses: an HTTPS token, an SSH key file or the SSH agent, and host keys checked
/// against ~/.ssh/known_hosts. The master's poller compares two readings with
/// sched::poll_events.

#include <chrono>
#include <map>
#include <stop_token>
#include <string>

#include <ci/core/error.h>

namespace ci::git {

/// How a remote is reached.
struct RemoteOptions {
    std::string token;   ///< HTTPS token (a secret); empty: none
    std::string ssh_key; ///< private key file for SSH; empty: the SSH agent
    /// How long the listing may take, connection included.
    std::chrono::milliseconds timeout = std::chrono::seconds(60);
    /// Ends the wait early (Cancelled) when stop is requested.
    std::stop_token stop;
};

/// Refs by full name ("refs/heads/x", "refs/tags/y") to 40-hex commit ids.
using RefMap = std::map<std::string, std::string>;

/// Lists the branches and tags of the repository at `url` (what `git clone` accepts: a path,
/// file://, https://, ssh:// or scp-like). An annotated tag maps to the commit it points to,
/// not to the tag object; other refs (HEAD, pull requests, notes) are left out.
///
/// Errors name the URL with any credentials in it redacted: Git (unreachable, no repository
/// there, authentication refused, unknown host key), Timeout after `options.timeout`, Cancelled
/// when `options.stop` is requested first.
///
/// The connection runs on a thread of its own so that the caller's wait ends at the deadline
/// even when the server stops answering; that thread ends when its connection does (libgit2
/// 1.5 has no network timeouts of its own). Until then, a new listing of the same URL fails at
/// once with Timeout instead of starting a second connection that would hang the same way.
/// Thread-safe.
[[nodiscard]] Result<RefMap> list_remote_refs(const std::string& url,
                                              const RemoteOptions& options = {});

} // namespace ci::git
