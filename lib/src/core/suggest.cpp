#include <algorithm>
#include <limits>
#include <string>

#include <ci/core/suggest.h>

#include "core/ascii.h"

namespace ci {

namespace {

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so "web_prot"
// is one edit from "web_port". Three rows of the matrix (a transposition looks two back): memory
// in proportion to `b`, time to the product of the lengths (which closest_match bounds).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> before(b.size() + 1);
    std::vector<std::size_t> previous(b.size() + 1);
    std::vector<std::size_t> current(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        previous[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        current[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                current[j] = std::min(current[j], before[j - 2] + 1);
            }
        }
        std::swap(before, previous);
        std::swap(previous, current);
    }
    return previous[b.size()];
}

} // namespace

std::optional<std::string_view> closest_match(std::string_view word,
                                              const std::vector<std::string_view>& candidates) {
    if (word.size() > max_suggestion_length) {
        return std::nullopt;
    }
    // Close enough to be a typo: a third of the word's letters, at least one, at most three.
    const std::size_t limit = std::clamp<std::size_t>(word.size() / 3, 1, 3);
    const std::string word_lower = ascii_lower(word);
    std::optional<std::string_view> best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (const auto candidate : candidates) {
        // The distance is at least the difference in length: such candidates need no matrix.
        const std::size_t apart = candidate.size() > word.size() ? candidate.size() - word.size()
                                                                 : word.size() - candidate.size();
        if (apart > limit) {
            continue;
        }
        const std::size_t distance = edit_distance(word_lower, ascii_lower(candidate));
        if (distance < best_distance) {
            best = candidate;
            best_distance = distance;
        }
    }
    if (best && best_distance <= limit) {
        return best;
    }
    return std::nullopt;
}

} // namespace ci
