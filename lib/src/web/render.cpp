#include "web/render.h"

#include <map>
#include <memory>

#include <fmt/format.h>

#include "core/html.h"
#include "web/assets.h"

namespace ci::web {

namespace {

// Templates escape `{{x}}` as the rest of libci's HTML does (core/html.h).
std::string escape(const std::string& text) {
    return html_escape(text);
}

// Parsed templates of this thread, by name (static storage: the asset names live for good).
// kainjow's render() is not const, so a parsed template is not shared between threads.
kainjow::mustache::mustache* parsed(std::string_view name) {
    thread_local std::map<std::string_view, std::unique_ptr<kainjow::mustache::mustache>> cache;
    if (const auto found = cache.find(name); found != cache.end()) {
        return found->second.get();
    }
    const auto* asset = find_asset(name);
    if (asset == nullptr) {
        return nullptr;
    }
    auto parsed_template = std::make_unique<kainjow::mustache::mustache>(std::string(asset->bytes));
    parsed_template->set_custom_escape(escape);
    return cache.emplace(asset->name, std::move(parsed_template)).first->second.get();
}

} // namespace

Result<std::string> render(std::string_view name, const Data& data) {
    auto* tmpl = parsed(name);
    if (tmpl == nullptr) {
        return fail(ErrorCode::InvalidArgument, fmt::format("no template \"{}\"", name));
    }
    if (!tmpl->is_valid()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("template \"{}\": {}", name, tmpl->error_message()));
    }
    return tmpl->render(data);
}

Result<std::string> render_text(const std::string& text, const Data& data) {
    kainjow::mustache::mustache tmpl(text);
    tmpl.set_custom_escape(escape);
    if (!tmpl.is_valid()) {
        return fail(ErrorCode::InvalidArgument, "template: " + tmpl.error_message());
    }
    return tmpl.render(data);
}

void append(Data& list, Data item) {
    // kainjow has no mutable access to a list: its storage is an object of its own (allocated
    // by the Data, never const), so modifying it through the const reference is well-defined.
    const_cast<List&>(list.list_value()).push_back(std::move(item)); // NOLINT(*-const-cast)
}

void add_partials(Data& data) {
    for (const auto& asset : assets()) {
        if (!asset.name.starts_with('_') || !asset.name.ends_with(".mustache")) {
            continue;
        }
        const auto bytes = asset.bytes;
        data.set(std::string(asset.name.substr(0, asset.name.size() - 9)),
                 Data(kainjow::mustache::partial([bytes] { return std::string(bytes); })));
    }
}

} // namespace ci::web
