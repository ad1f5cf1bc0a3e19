#pragma once

// The schema: from a YAML tree to a Config, checking every key (types, unknown keys, required
// keys, references between sections) and collecting every diagnostic.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include <ci/config/config.h>
#include <ci/config/load.h>

namespace ci::config::detail {

/// Checks `root` (the whole document) and appends diagnostics to `out`, sorted by position.
/// Returns the Config when no diagnostic is an error. `base_directory`: the directory of the
/// config file the text was read from (load_config), against which files the config names are
/// resolved and then read (worker_files' sources); nullptr: no file is read.
[[nodiscard]] std::optional<Config>
check_document(const YAML::Node& root,
               const std::string& origin,
               std::vector<Diagnostic>& out,
               const std::filesystem::path* base_directory = nullptr);

} // namespace ci::config::detail
