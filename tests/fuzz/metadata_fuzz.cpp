// A wheel's METADATA from any bytes, in a valid archive (made here with libzip): the wheel or an
// error saying what is wrong, never a crash; what reaches the pages is valid UTF-8 in the JSON
// and escaped in the HTML.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <zip.h>

#include "wheel_file.h"

// libFuzzer calls it with each input; the name is libFuzzer's, hence the NOLINT.
// NOLINTNEXTLINE(readability-identifier-naming)
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

// A stored (uncompressed) zip archive holding pkg-1.0.dist-info/METADATA = `metadata`.
std::string archive(std::string_view metadata) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* memory = zip_source_buffer_create(nullptr, 0, 0, &error);
    zip_t* zip = zip_open_from_source(memory, ZIP_TRUNCATE, &error);
    zip_source_keep(memory);
    zip_source_t* file = zip_source_buffer(zip, metadata.data(), metadata.size(), 0);
    zip_file_add(zip, "pkg-1.0.dist-info/METADATA", file, 0);
    zip_close(zip);
    std::string out;
    zip_stat_t stat;
    if (zip_source_stat(memory, &stat) == 0 && zip_source_open(memory) == 0) {
        out.resize(stat.size);
        zip_source_read(memory, out.data(), stat.size);
        zip_source_close(memory);
    }
    zip_source_free(memory);
    zip_error_fini(&error);
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view metadata(reinterpret_cast<const char*>(data), size);
    ci::fuzz::read_and_check_pages(ci::fuzz::write_wheel(archive(metadata)));
    return 0;
}
