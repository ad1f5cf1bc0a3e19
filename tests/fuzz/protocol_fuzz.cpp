// The worker protocol's line decoder (master/protocol): whatever a peer sends on the worker port
// before or after its hello. A line that decodes must encode again and decode to the same line.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "master/protocol.h"

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view line(reinterpret_cast<const char*>(data), size);
    auto message = ci::master::protocol::decode(line);
    if (!message) {
        return 0;
    }
    const auto encoded = ci::master::protocol::encode(*message);
    auto again = ci::master::protocol::decode(encoded);
    if (!again || ci::master::protocol::encode(*again) != encoded) {
        std::abort(); // encode and decode disagree
    }
    return 0;
}
