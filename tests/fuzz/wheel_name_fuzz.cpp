// Wheel file names (PEP 427) and project names (PEP 503) from any bytes: a name or an error,
// never a crash; a parsed name's version writes back as one that parses to an equal version.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ci/wheelhouse/wheel.h>

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)ci::wheelhouse::normalize_project_name(text);
    auto name = ci::wheelhouse::parse_wheel_name(text);
    if (name) {
        auto again = ci::wheelhouse::parse_version(name->version.to_string());
        if (!again || !(*again == name->version)) {
            __builtin_trap();
        }
    }
    return 0;
}
