#pragma once

/// \file
/// "Did you mean": the closest of some known words to a word that is not one of them (a config
/// key, a command-line flag or command).

#include <cstddef>
#include <optional>
#include <string_view>
#include <vector>

namespace ci {

/// Longer words get no suggestion (the cost of a comparison grows with the lengths).
inline constexpr std::size_t max_suggestion_length = 64;

/// The closest of `candidates` to `word` (ASCII case ignored; optimal string alignment
/// distance: a swap of two adjacent letters is one edit) when it is close enough to be a likely
/// typo: at most a third of the word's letters apart (at least 1, at most 3). nullopt when none
/// is, or when `word` is longer than max_suggestion_length. The view is into `candidates`.
[[nodiscard]] std::optional<std::string_view>
closest_match(std::string_view word, const std::vector<std::string_view>& candidates);

} // namespace ci
