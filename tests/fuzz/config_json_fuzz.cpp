// The config's JSON form (config/json: RapidJSON, then the YAML tree and the schema) on any
// bytes, as `ci-master start` reads $LIBCI_CONFIG: a config or errors naming the key, never a
// crash, and within the limits of ci/config/load.h.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ci/config/load.h>

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto checked = ci::config::parse_config_json(text, "$LIBCI_CONFIG");
    if (checked.config) {
        // What is accepted writes back and reads again as the same config.
        auto again = ci::config::parse_config_json(ci::config::to_json(*checked.config), "again");
        if (!again.config || !(*again.config == *checked.config)) {
            __builtin_trap();
        }
    }
    return 0;
}
