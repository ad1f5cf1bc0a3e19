// GET /builds/{id}: the build page. What the build is (builder, branch, tips, merge, result,
// tests, properties), each step with its result and duration, and each step's log rendered by
// web/log_view.h: the last lines of each (2,000 for the focus step: the one asked for with
// ?step=N, else the first failed one, else the running one, else the last; 200 for the others),
// or lines from ?from=L on, with links to earlier lines and to the raw log. A running step's log
// goes on live (log.js over .../events?format=html from the cursor the page was rendered at).
// Every datum here is also in GET /api/v1/builds/{id}.
//
// A 40 MB log is read page by page (Store::log_page) and scanned (AnsiHtml::skip), never held
// or rendered whole: the page holds at most max_focus_bytes of it.

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>

#include <fmt/chrono.h>
#include <fmt/format.h>

#include "master/build_links.h"
#include "master/services.h"
#include "web/assets.h"
#include "web/log_view.h"
#include "web/page.h"

namespace ci::master {

namespace {

constexpr std::size_t focus_lines = 2000;
constexpr std::size_t other_lines = 200;
constexpr std::size_t max_focus_bytes = std::size_t{1} << 20;
constexpr std::size_t max_other_bytes = std::size_t{128} * 1024;
constexpr std::size_t page_bytes = std::size_t{256} * 1024;

std::string wall_time(const store::WallTime& time) {
    return fmt::format("{:%Y-%m-%d %H:%M:%S} UTC", std::chrono::floor<std::chrono::seconds>(time));
}

std::string duration_text(const std::optional<store::WallTime>& started,
                          const std::optional<store::WallTime>& finished) {
    if (!started || !finished) {
        return {};
    }
    const auto seconds =
        std::chrono::duration_cast<std::chrono::seconds>(*finished - *started).count();
    if (seconds >= 3600) {
        return fmt::format("{}h {}m {}s", seconds / 3600, seconds / 60 % 60, seconds % 60);
    }
    if (seconds >= 60) {
        return fmt::format("{}m {}s", seconds / 60, seconds % 60);
    }
    return fmt::format("{}s", seconds);
}

std::string size_text(std::int64_t bytes) {
    if (bytes >= std::int64_t{1024} * 1024) {
        return fmt::format("{:.1f} MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
    }
    if (bytes >= 1024) {
        return fmt::format("{:.1f} KB", static_cast<double>(bytes) / 1024.0);
    }
    return fmt::format("{} bytes", bytes);
}

// The page's request, read before the store is.
struct PageAsk {
    std::int64_t id = 0;
    std::optional<int> step; // ?step=N
    std::int64_t from = 0;   // ?from=L (with step)
    std::map<int, LogSnapshot> memory;
    web::Frame frame;
    Viewer viewer;
};

// Step `number`'s log, as much as `view` shows: the store's pages, then memory's.
Status read_log(store::Store& store,
                std::int64_t id,
                int number,
                const LogSnapshot* memory,
                web::LogView& view) {
    const auto to =
        memory != nullptr ? memory->in_store_before : std::numeric_limits<std::int64_t>::max();
    for (std::int64_t next = 0; next < to;) {
        auto page = store.log_page(id, number, next, to, page_bytes);
        if (!page) {
            return fail(page.error());
        }
        view.add(next, page->next, page->text);
        if (!page->more) {
            break;
        }
        next = page->next;
    }
    if (memory != nullptr && !memory->memory.empty()) {
        view.add(memory->memory_first, memory->next, memory->memory);
    }
    return {};
}

// The number of the step a build page opens at: `asked` when the build has it, else the first
// that failed, else the one running, else the last; 0 for a build without steps. (An int, not an
// optional: GCC 12 at -O3 warned of a maybe-uninitialized optional here.)
int focus_step(const std::vector<store::Step>& steps, std::optional<int> asked) {
    if (asked &&
        std::ranges::any_of(steps, [&](const auto& step) { return step.number == *asked; })) {
        return *asked;
    }
    for (const auto& step : steps) {
        if (step.result && *step.result != BuildResult::Success &&
            *step.result != BuildResult::Warnings) {
            return step.number;
        }
    }
    for (const auto& step : steps) {
        if (!step.finished) {
            return step.number;
        }
    }
    return steps.empty() ? 0 : steps.back().number;
}

// The builds the build's trigger steps requested and the files its uploads stored.
web::Data links_data(const BuildLinks& links) {
    web::Data data;
    web::List triggered;
    for (const auto& t : links.triggered) {
        web::Data item;
        item.set("step", std::to_string(t.step));
        item.set("builder", t.builder);
        item.set("request", std::to_string(t.request));
        item.set("state", t.state);
        item.set("has_build", t.build != 0);
        if (t.build != 0) {
            item.set("build", std::to_string(t.build));
            item.set("result", t.result);
        }
        triggered.emplace_back(std::move(item));
    }
    data.set("has_triggered", !triggered.empty());
    data.set("triggered", web::Data(triggered));
    data.set("triggered_count", std::to_string(links.triggered.size()));
    data.set("has_results", !links.results_url.empty());
    data.set("results", links.results_url);
    web::List artifacts;
    for (const auto& a : links.artifacts) {
        web::Data item;
        item.set("name", a.name + (a.directory ? "/" : ""));
        item.set("url", a.url);
        artifacts.emplace_back(std::move(item));
    }
    data.set("artifacts", web::Data(artifacts));
    data.set("artifact_count", std::to_string(links.artifacts.size()));
    data.set("more_artifacts", links.more_artifacts);
    return data;
}

http::ServerResponse render(store::Store& store, const Services& services, const PageAsk& ask) {
    const auto started = std::chrono::steady_clock::now();
    auto build = store.build(ask.id);
    if (!build) {
        return web::error_page(ask.frame, 500, build.error().message);
    }
    if (!*build) {
        return web::error_page(ask.frame, 404, fmt::format("There is no build {}.", ask.id));
    }
    auto steps = store.steps(ask.id);
    if (!steps) {
        return web::error_page(ask.frame, 500, steps.error().message);
    }
    auto request = store.request((*build)->request_id);
    const store::BuildRequest* requested = request && *request ? &**request : nullptr;
    const auto& b = **build;
    const bool running = !b.finished;

    web::Data data;
    data.set("id", std::to_string(b.id));
    data.set("builder", b.builder);
    data.set("result",
             std::string(running ? "running" : (b.result ? to_string(*b.result) : "unknown")));
    data.set("worker", b.worker);
    data.set("started", wall_time(b.started));
    if (b.finished) {
        data.set("finished", wall_time(*b.finished));
        data.set("duration", duration_text(b.started, b.finished));
    }
    // Mustache shows a section of an empty string: absent values are left unset.
    const auto set_text = [](web::Data& to, const std::string& name, const std::string& value) {
        if (!value.empty()) {
            to.set(name, value);
        }
    };
    set_text(data, "branch_tip", b.branch_tip);
    set_text(data, "target_tip", b.target_tip);
    set_text(data, "merge_commit", b.merge_commit);
    if (requested != nullptr) {
        set_text(data, "branch", requested->request.branch);
        set_text(data, "repository", requested->request.repository);
        set_text(data, "reason", requested->request.reason);
    }
    auto links = build_links(store, services.config, services.results_dir, b, requested);
    if (!links) {
        return web::error_page(ask.frame, 500, links.error().message);
    }
    data.set("links", links_data(*links));
    data.set("step_count", std::to_string(steps->size()));
    const auto [properties, tests] = build_totals(requested, *steps);
    if (tests) {
        web::Data t;
        t.set("summary", "tests: " + tests->summary());
        web::List failed;
        for (const auto& name : tests->failed_tests) {
            failed.emplace_back(name);
        }
        t.set("failed_tests", web::Data(failed));
        data.set("tests", t);
    }
    web::List property_list;
    for (const auto& [name, value] : properties) {
        web::Data p;
        p.set("name", name);
        p.set("value", value);
        property_list.emplace_back(std::move(p));
    }
    data.set("has_properties", !property_list.empty());
    data.set("properties", web::Data(property_list));
    if (running && ask.viewer.logged_in()) {
        data.set("can_stop", true);
        data.set("csrf", ask.viewer.csrf_token);
    }

    const int focus = focus_step(*steps, ask.step);
    // A step asked for that the build does not have is as if none was asked (its `from` with it).
    const auto from = ask.step && focus == *ask.step ? ask.from : std::int64_t{0};

    web::List step_list;
    for (const auto& step : *steps) {
        const bool focused = step.number == focus;
        const auto memory = ask.memory.find(step.number);
        const LogSnapshot* in_memory = memory != ask.memory.end() ? &memory->second : nullptr;
        const bool live = in_memory != nullptr && in_memory->live;
        web::LogView view(focused ? focus_lines : other_lines,
                          focused ? max_focus_bytes : max_other_bytes,
                          focused ? from : 0);
        if (auto read = read_log(store, b.id, step.number, in_memory, view); !read) {
            return web::error_page(ask.frame, 500, read.error().message);
        }
        const auto lines = view.finish(!live);
        web::Data s;
        s.set("id", std::to_string(b.id));
        s.set("line_count", std::to_string(lines.total));
        s.set("number", std::to_string(step.number));
        s.set("name", step.name);
        s.set("result",
              std::string(step.finished ? (step.result ? to_string(*step.result) : "unknown")
                                        : "running"));
        s.set("duration", duration_text(step.started, step.finished));
        s.set("description", step.description);
        s.set("open", focused);
        s.set("focus", focused);
        s.set("lines", fmt::format("{} line{}", lines.total, lines.total == 1 ? "" : "s"));
        s.set("size", size_text(lines.bytes));
        s.set("raw", fmt::format("/api/v1/builds/{}/steps/{}/log", b.id, step.number));
        if (!lines.lines.empty() && lines.lines.front().first > 1) {
            const auto first = lines.lines.front().first;
            const auto back = static_cast<std::int64_t>(focus_lines);
            s.set("earlier", std::to_string(std::max<std::int64_t>(1, first - back)));
        }
        if (!lines.lines.empty() && lines.lines.back().first < lines.total && !live) {
            s.set("later", std::to_string(lines.lines.back().first + 1));
        }
        if (live && lines.after && (from == 0 || !focused)) {
            s.set("events",
                  fmt::format("/api/v1/builds/{}/steps/{}/events?format=html", b.id, step.number));
            s.set("from", lines.after->text());
        }
        // HTML web/log_view.h rendered with every datum escaped (the page's one reviewed use of
        // {{{ }}} besides the layout's body).
        s.set("html", web::log_lines_html(step.number, lines));
        step_list.emplace_back(std::move(s));
    }
    data.set("steps", web::Data(step_list));
    data.set("log_css", web::static_url("log.css"));
    data.set("log_js", web::static_url("log.js"));
    auto response = web::page_response(ask.frame, "build.mustache", data);
    const auto spent =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
            .count();
    response.headers.emplace_back("Server-Timing", fmt::format("render;dur={:.1f}", spent));
    return response;
}

void build_page(Services& s,
                const http::ServerRequest& request,
                std::int64_t id,
                http::Reply reply) {
    PageAsk ask;
    ask.id = id;
    ask.frame = page_frame(s, request, fmt::format("Build {}", id));
    ask.viewer = Viewer{ask.frame.user, ask.frame.csrf_token};
    // ?step=N&from=L: which step's log, and from which line (as the API, a value that is not
    // an integer in range is a 400 naming it).
    const auto asked_step = query_number(request, "step", -1, 0, 100000);
    const auto from = query_number(request, "from", 0, 0, std::numeric_limits<std::int64_t>::max());
    if (!asked_step || !from) {
        reply.send(web::error_page(
            ask.frame, 400, !asked_step ? asked_step.error().message : from.error().message));
        return;
    }
    if (*asked_step >= 0) {
        ask.step = static_cast<int>(*asked_step);
        ask.from = *from;
    }
    // What memory holds of a build in memory: its steps' newest log (not on disk yet).
    if (const auto builder = s.running.builder(id)) {
        const auto found = s.config.builders.find(*builder);
        const auto count = found == s.config.builders.end() ? 0 : found->second.steps.size();
        for (std::size_t step = 0; step <= count; ++step) {
            auto snapshot = s.running.snapshot(id, static_cast<int>(step), nullptr);
            if (snapshot && snapshot->started) {
                ask.memory.emplace(static_cast<int>(step), std::move(*snapshot));
            }
        }
    }
    s.reads.post([&s, reply, ask = std::move(ask)](store::Store& store) mutable {
        reply.send(render(store, s, ask));
    });
}

} // namespace

void add_build_page_routes(Router& router, Services& services) {
    router.add(
        "GET",
        "/builds/{id}",
        [&services](http::ServerRequest& request, const PathParams& params, http::Reply reply) {
            const auto id = params.integer("id");
            if (!id) {
                web::Frame frame;
                frame.title = "No such build";
                reply.send(web::error_page(frame, 404, "Build ids are integers."));
                return;
            }
            build_page(services, request, *id, std::move(reply));
        });
}

} // namespace ci::master
