#pragma once

// The schema: from a YAML tree to a Config, checking every key (types, unknown keys, required
// keys, references between sections) and collecting every diagnostic.

#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <ci/config/config.h>
#include <ci/config/load.h>

namespace ci::config::detail {

/// Checks `root` (the whole document) and appends diagnostics to `out`, sorted by position.
/// Returns the Config when no diagnostic is an error.
[[nodiscard]] std::optional<Config>
check_document(const YAML::Node& root, const std::string& origin, std::vector<Diagnostic>& out);

} // namespace ci::config::detail
