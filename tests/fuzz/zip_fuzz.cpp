// Reading a wheel (wheelhouse/read: libzip, then METADATA) from any bytes: a wheel or an error
// naming the file, never a crash; an accepted wheel's pages are valid UTF-8 JSON.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <rapidjson/document.h>

#include <ci/wheelhouse/index.h>

#include "wheel_file.h"

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path =
        ci::fuzz::write_wheel(std::string_view(reinterpret_cast<const char*>(data), size));
    auto wheel = ci::wheelhouse::read_wheel(path);
    if (wheel) {
        for (const auto& page : ci::wheelhouse::build_index(std::vector{wheel->entry})) {
            if (page.key.ends_with(".json")) {
                rapidjson::Document json;
                json.Parse<rapidjson::kParseValidateEncodingFlag>(page.body.c_str());
                if (json.HasParseError()) {
                    __builtin_trap();
                }
            }
        }
    }
    return 0;
}
