#pragma once

// Server-side HTML from the embedded mustache templates (kainjow mustache, header-only): `{{x}}`
// is HTML-escaped (& < > " '), `{{{x}}}` is not and is reserved for HTML this code produced
// itself (a page's rendered body inside the layout), never for data.
//
// Templates are parsed once per thread and kept (parsing a template again for every page would
// cost more than rendering it).

#include <string>
#include <string_view>

#include <kainjow/mustache.hpp>

#include <ci/core/error.h>

namespace ci::web {

/// What a template renders: objects, lists, strings and booleans (mustache's data model).
using Data = kainjow::mustache::data;
using List = kainjow::mustache::list;
using Object = kainjow::mustache::object;

/// An empty list, to fill with append().
[[nodiscard]] inline Data make_list() {
    return {Data::type::list};
}

/// Appends `item` to the list `list` by moving it (kainjow's push_back copies: a grid of 10,000
/// cells copied at each level of nesting cost more than rendering it). `list` must be a list.
void append(Data& list, Data item);

/// Sets `object[key]` to `value` by moving it (kainjow's set() copies).
inline void put(Data& object, const std::string& key, Data value) {
    object[key] = std::move(value);
}

/// Renders the embedded template `name` ("home.mustache") with `data`. Fails (InvalidArgument)
/// for an unknown template or one mustache cannot parse, naming it. Thread-safe.
[[nodiscard]] Result<std::string> render(std::string_view name, const Data& data);

/// Renders the template text `text` (tests; a template not embedded). Thread-safe.
[[nodiscard]] Result<std::string> render_text(const std::string& text, const Data& data);

/// Makes every embedded template whose name starts with '_' ("_force_fields.mustache") a partial
/// of `data`, included as `{{> _force_fields}}`.
void add_partials(Data& data);

} // namespace ci::web
