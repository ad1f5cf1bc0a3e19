// The config loader (config/load: YAML, then the schema) on any text: a config or an error
// naming the file, line and key, never a crash.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ci/config/load.h>

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    (void)ci::config::parse_config(text, "fuzz.yml").to_result();
    return 0;
}
