// core/json's parse_object: the depth-checked parser every JSON reader of libci uses (webhooks,
// API bodies, worker lines, stored reports). Any bytes: an object or an error, never a crash.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.h"

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto document = ci::json::parse_object(text);
    if (document) {
        // What readers do next: look members up with the type-checked helpers.
        (void)ci::json::string_member(*document, "type");
        (void)ci::json::string_member(*document, "ref");
    }
    return 0;
}
