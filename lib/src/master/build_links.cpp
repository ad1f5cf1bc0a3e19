#include "master/build_links.h"

#include <algorithm>
#include <system_error>

#include <ci/build/results.h>

#include "master/results.h"
#include "master/services.h"

namespace ci::master {

std::string results_branch(const config::Config& config, const store::BuildRequest& request) {
    if (request.request.repository.empty()) {
        return {};
    }
    if (!request.request.branch.empty()) {
        return request.request.branch;
    }
    const auto repository = config.repositories.find(request.request.repository);
    return repository == config.repositories.end() ? std::string()
                                                   : repository->second.default_branch;
}

namespace {

Result<std::vector<TriggeredBuild>> triggered_builds(store::Store& store, std::int64_t request) {
    auto requests = store.requests_triggered_by(request);
    if (!requests) {
        return fail(requests.error());
    }
    std::vector<TriggeredBuild> out;
    out.reserve(requests->size());
    for (const auto& queued : *requests) {
        TriggeredBuild triggered;
        triggered.request = queued.id;
        triggered.step = queued.request.triggered_by_step;
        triggered.builder = queued.request.builder;
        triggered.state = request_state_text(queued.state);
        store::BuildQuery query;
        query.request = queued.id;
        query.limit = 1;
        auto builds = store.builds(query);
        if (!builds) {
            return fail(builds.error());
        }
        if (!builds->empty()) {
            const auto& newest = builds->front();
            triggered.build = newest.id;
            triggered.result = !newest.finished ? "running"
                               : newest.result  ? std::string(to_string(*newest.result))
                                                : "unknown";
        }
        out.push_back(std::move(triggered));
    }
    return out;
}

} // namespace

Result<BuildLinks> build_links(store::Store& store,
                               const config::Config& config,
                               const std::filesystem::path& results_root,
                               const store::Build& build,
                               const store::BuildRequest* request) {
    BuildLinks links;
    auto triggered = triggered_builds(store, build.request_id);
    if (!triggered) {
        return fail(triggered.error());
    }
    links.triggered = std::move(*triggered);
    if (results_root.empty()) {
        return links;
    }
    const auto branch = request != nullptr ? results_branch(config, *request) : std::string();
    const auto directory = results_root / build::results_path(build.builder, branch, build.id);
    std::error_code error;
    // Not followed when it is a symbolic link itself (as GET /results would not).
    if (!std::filesystem::is_directory(std::filesystem::symlink_status(directory, error))) {
        return links; // no upload stored anything (or the results were swept)
    }
    const auto url = build::results_url("", build.builder, branch, build.id) + "/";
    for (std::filesystem::directory_iterator it(directory, error), end; !error && it != end;
         it.increment(error)) {
        const auto name = it->path().filename().string();
        const auto status = it->symlink_status(error);
        if (error || name.starts_with('.') ||
            (!std::filesystem::is_directory(status) && !std::filesystem::is_regular_file(status))) {
            error.clear();
            continue;
        }
        if (links.artifacts.size() == max_artifacts) {
            links.more_artifacts = true;
            break;
        }
        Artifact artifact;
        artifact.directory = std::filesystem::is_directory(status);
        artifact.url = url + percent_encode_segment(name) + (artifact.directory ? "/" : "");
        artifact.name = name;
        links.artifacts.push_back(std::move(artifact));
    }
    std::ranges::sort(links.artifacts, {}, &Artifact::name);
    links.results_url = url;
    return links;
}

} // namespace ci::master
