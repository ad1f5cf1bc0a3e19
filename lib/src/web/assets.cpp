#include "web/assets.h"

#include <algorithm>
#include <string>

namespace ci::web {

const Asset* find_asset(std::string_view name) {
    const auto all = assets();
    const auto found =
        std::ranges::find_if(all, [&](const Asset& asset) { return asset.name == name; });
    return found == all.end() ? nullptr : &*found;
}

std::string static_url(std::string_view name) {
    std::string url = "/static/";
    url += name;
    if (const auto* asset = find_asset(name)) {
        url += "?v=";
        url += asset->hash;
    }
    return url;
}

} // namespace ci::web
