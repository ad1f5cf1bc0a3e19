#include "ci/wheelhouse/index.h"

#include <algorithm>
#include <map>

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <ci/http/request.h>

#include "core/html.h"
#include "core/utf8.h"

namespace ci::wheelhouse {

namespace {

constexpr std::string_view html_type = "text/html";
constexpr std::string_view json_type = "application/vnd.pypi.simple.v1+json";
constexpr std::string_view repository_version = "1.1";

std::string page_head(std::string_view title) {
    return fmt::format("<!DOCTYPE html>\n<html>\n  <head>\n"
                       "    <meta name=\"pypi:repository-version\" content=\"{}\">\n"
                       "    <title>{}</title>\n  </head>\n  <body>\n    <h1>{}</h1>\n",
                       repository_version,
                       html_escape(title),
                       html_escape(title));
}

constexpr std::string_view page_tail = "  </body>\n</html>\n";

// A link to a wheel, its href starting with `up` (the way from the page to the prefix). Built
// by appending: the flat index holds one per wheel, thousands of them.
void append_wheel_link(std::string& out, const WheelEntry& wheel, std::string_view up) {
    out += "    <a href=\"";
    out += up;
    out += html_escape(http::uri_encode(wheel.file_name));
    out += "#sha256=";
    out += wheel.sha256;
    out += '"';
    if (wheel.requires_python) {
        out += " data-requires-python=\"";
        out += html_escape(*wheel.requires_python);
        out += '"';
    }
    if (!wheel.metadata_sha256.empty()) {
        out += " data-dist-info-metadata=\"sha256=";
        out += wheel.metadata_sha256;
        out += "\" data-core-metadata=\"sha256=";
        out += wheel.metadata_sha256;
        out += '"';
    }
    out += '>';
    out += html_escape(wheel.file_name);
    out += "</a><br/>\n";
}

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Valid UTF-8 always (RapidJSON's writer copies bytes as they are): text from a wheel's METADATA
// or a downloaded manifest may hold anything, and one bad byte makes a page no client parses.
void json_string(JsonWriter& out, std::string_view text) {
    const std::string valid = to_valid_utf8(std::string(text));
    out.String(valid.data(), static_cast<rapidjson::SizeType>(valid.size()));
}

void json_meta(JsonWriter& out) {
    out.Key("meta");
    out.StartObject();
    out.Key("api-version");
    json_string(out, repository_version);
    out.EndObject();
}

std::string project_json(std::string_view project,
                         const std::vector<const WheelEntry*>& wheels,
                         std::string_view up) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    out.StartObject();
    json_meta(out);
    out.Key("name");
    json_string(out, project);
    out.Key("files");
    out.StartArray();
    std::vector<std::string> versions;
    for (const auto* wheel : wheels) {
        out.StartObject();
        out.Key("filename");
        json_string(out, wheel->file_name);
        out.Key("url");
        json_string(out, std::string(up) + http::uri_encode(wheel->file_name));
        out.Key("hashes");
        out.StartObject();
        out.Key("sha256");
        json_string(out, wheel->sha256);
        out.EndObject();
        if (wheel->requires_python) {
            out.Key("requires-python");
            json_string(out, *wheel->requires_python);
        }
        if (!wheel->metadata_sha256.empty()) {
            for (const char* key : {"core-metadata", "dist-info-metadata"}) {
                out.Key(key);
                out.StartObject();
                out.Key("sha256");
                json_string(out, wheel->metadata_sha256);
                out.EndObject();
            }
        }
        out.Key("size");
        out.Uint64(wheel->size);
        out.EndObject();
        const std::string version = wheel->name.version.to_string();
        if (versions.empty() || versions.back() != version) {
            versions.push_back(version);
        }
    }
    out.EndArray();
    out.Key("versions");
    out.StartArray();
    for (const auto& version : versions) {
        json_string(out, version);
    }
    out.EndArray();
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

std::string root_json(const std::map<std::string, std::vector<const WheelEntry*>>& projects) {
    rapidjson::StringBuffer buffer;
    JsonWriter out(buffer);
    out.StartObject();
    json_meta(out);
    out.Key("projects");
    out.StartArray();
    for (const auto& [project, wheels] : projects) {
        out.StartObject();
        out.Key("name");
        json_string(out, project);
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// Each HTML page under "dir/" and "dir/index.html" (see the header).
void add_html(std::vector<Page>& pages, const std::string& dir, const std::string& body) {
    pages.push_back(Page{dir, std::string(html_type), body});
    pages.push_back(Page{dir + "index.html", std::string(html_type), body});
}

} // namespace

std::vector<Page> build_index(const std::vector<WheelEntry>& wheels,
                              std::string_view base_url,
                              const std::set<std::string>* only_projects) {
    std::vector<const WheelEntry*> pointers;
    pointers.reserve(wheels.size());
    for (const auto& wheel : wheels) {
        pointers.push_back(&wheel);
    }
    return build_index(pointers, base_url, only_projects);
}

std::vector<Page> build_index(const std::vector<const WheelEntry*>& wheels,
                              std::string_view base_url,
                              const std::set<std::string>* only_projects) {
    std::string base(base_url);
    if (!base.empty() && !base.ends_with('/')) {
        base += '/';
    }
    const std::string from_project = base.empty() ? "../../" : base;
    // Projects by normalized name; their wheels by version (PEP 440), then file name.
    std::vector<std::pair<std::string, const WheelEntry*>> keyed;
    keyed.reserve(wheels.size());
    for (const auto* wheel : wheels) {
        keyed.emplace_back(normalize_project_name(wheel->name.distribution), wheel);
    }
    std::ranges::sort(keyed, [](const auto& a, const auto& b) {
        if (const auto order = a.first <=> b.first; std::is_neq(order)) {
            return std::is_lt(order);
        }
        if (const auto order = a.second->name.version <=> b.second->name.version;
            std::is_neq(order)) {
            return std::is_lt(order);
        }
        return a.second->file_name < b.second->file_name;
    });
    std::vector<const WheelEntry*> sorted;
    sorted.reserve(keyed.size());
    for (const auto& [name, wheel] : keyed) {
        sorted.push_back(wheel);
    }
    std::map<std::string, std::vector<const WheelEntry*>> projects;
    for (const auto& [name, wheel] : keyed) {
        projects[name].push_back(wheel);
    }

    std::vector<Page> pages;
    for (const auto& [name, project_wheels] : projects) {
        if (only_projects != nullptr && !only_projects->contains(name)) {
            continue;
        }
        std::string body = page_head("Links for " + name);
        for (const auto* wheel : project_wheels) {
            append_wheel_link(body, *wheel, from_project);
        }
        body += page_tail;
        const std::string dir = "simple/" + name + "/";
        add_html(pages, dir, body);
        pages.push_back(Page{dir + "index.json",
                             std::string(json_type),
                             project_json(name, project_wheels, from_project)});
    }
    std::string root = page_head("Simple index");
    for (const auto& [name, project_wheels] : projects) {
        root += fmt::format("    <a href=\"{}/\">{}</a><br/>\n",
                            html_escape(http::uri_encode(name)),
                            html_escape(name));
    }
    root += page_tail;
    add_html(pages, "simple/", root);
    pages.push_back(Page{"simple/index.json", std::string(json_type), root_json(projects)});

    std::string flat = page_head("Wheelhouse");
    flat.reserve(flat.size() + 400 * sorted.size());
    for (const auto* wheel : sorted) {
        append_wheel_link(flat, *wheel, base);
    }
    flat += page_tail;
    pages.push_back(Page{"index", std::string(html_type), flat});
    return pages;
}

std::string pip_conf(std::string_view url) {
    std::string index(url);
    if (index.ends_with('/')) {
        index += "index";
    }
    return fmt::format("# pip configuration for a libci wheelhouse (ci-wheelhouse pip-conf).\n"
                       "# pip looks for wheels in the wheelhouse as well as in its index.\n"
                       "[global]\n"
                       "find-links = {}\n",
                       index);
}

} // namespace ci::wheelhouse
