#include "ci/sched/poller.h"

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/core/process.h>

namespace ci::sched {

std::map<std::string, std::string> parse_ls_remote(std::string_view output) {
    std::map<std::string, std::string> refs;
    std::map<std::string, std::string> peeled;
    while (!output.empty()) {
        const auto end = std::min(output.find('\n'), output.size());
        const std::string_view line = output.substr(0, end);
        output.remove_prefix(std::min(end + 1, output.size()));
        const auto tab = line.find('\t');
        if (tab == std::string_view::npos) {
            continue;
        }
        const std::string id(line.substr(0, tab));
        std::string ref(line.substr(tab + 1));
        if (!ref.starts_with("refs/heads/") && !ref.starts_with("refs/tags/")) {
            continue;
        }
        if (ref.ends_with("^{}")) {
            ref.resize(ref.size() - 3);
            peeled[ref] = id;
        } else {
            refs[ref] = id;
        }
    }
    for (auto& [ref, id] : peeled) {
        refs[ref] = id;
    }
    return refs;
}

Result<std::map<std::string, std::string>> list_remote_refs(const std::string& url,
                                                            std::chrono::milliseconds timeout) {
    ProcessSpec spec;
    spec.argv = {"git", "ls-remote", "--heads", "--tags", url};
    // A poller runs unattended: a prompt for a password would hang it.
    spec.env = {{"GIT_TERMINAL_PROMPT", "0"}, {"GIT_ASKPASS", "/bin/false"}, {"LC_ALL", "C"}};
    spec.timeout = timeout;
    spec.kill_grace = std::chrono::seconds(2);
    std::string out;
    std::string err;
    spec.on_output = [&](OutputStream stream, std::string_view chunk) {
        (stream == OutputStream::Stdout ? out : err).append(chunk);
    };
    const std::string what = log::redact(fmt::format("git ls-remote {}", url));
    auto result = run_process(spec);
    if (!result) {
        return fail(result.error().with_context(what));
    }
    if (result->termination == ProcessResult::Termination::TimedOut) {
        return fail(ErrorCode::Timeout, fmt::format("{}: {}", what, result->describe()));
    }
    if (!result->success()) {
        while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) {
            err.pop_back();
        }
        return fail(ErrorCode::Git,
                    log::redact(fmt::format("{}: {}: {}", what, result->describe(), err)),
                    result->exit_code);
    }
    return parse_ls_remote(out);
}

} // namespace ci::sched
