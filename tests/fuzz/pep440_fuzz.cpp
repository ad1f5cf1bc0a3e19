// PEP 440 versions from any bytes: a version or an error, never a crash. A parsed version's
// normalized form parses to an equal version with the same normal form, and the ordering is
// consistent with equality.

#include <compare>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ci/wheelhouse/wheel.h>

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    // Two versions from one input: split at the first newline, to compare them.
    const auto newline = text.find('\n');
    auto first = ci::wheelhouse::parse_version(text.substr(0, newline));
    if (first) {
        const std::string normal = first->to_string();
        auto again = ci::wheelhouse::parse_version(normal);
        if (!again || (*again <=> *first) != std::strong_ordering::equal ||
            again->to_string() != normal) {
            __builtin_trap();
        }
    }
    if (first && newline != std::string_view::npos) {
        auto second = ci::wheelhouse::parse_version(text.substr(newline + 1));
        if (second && ((*first <=> *second) == std::strong_ordering::less) !=
                          ((*second <=> *first) == std::strong_ordering::greater)) {
            __builtin_trap();
        }
    }
    return 0;
}
