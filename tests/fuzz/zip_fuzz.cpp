// Reading a wheel (wheelhouse/read: libzip, then METADATA) from any bytes: a wheel or an error
// naming the file, never a crash; an accepted wheel's pages are valid UTF-8 JSON.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "wheel_file.h"

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    ci::fuzz::read_and_check_pages(
        ci::fuzz::write_wheel(std::string_view(reinterpret_cast<const char*>(data), size)));
    return 0;
}
