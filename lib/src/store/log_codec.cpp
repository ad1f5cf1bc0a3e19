#include "store/log_codec.h"

#include <cstdint>
#include <cstring>
#include <zlib.h>

namespace ci::store::detail {

// Logs compress about tenfold; zlib at its fastest level keeps ingest cheap.
std::string compress_log_text(std::string_view text) {
    uLongf size = compressBound(static_cast<uLong>(text.size()));
    std::string out(size, '\0');
    compress2(reinterpret_cast<Bytef*>(out.data()),
              &size,
              reinterpret_cast<const Bytef*>(text.data()),
              static_cast<uLong>(text.size()),
              1);
    out.resize(size);
    // The original size first, so that decompressing needs no guessing.
    const auto original = static_cast<std::uint32_t>(text.size());
    return std::string(reinterpret_cast<const char*>(&original), sizeof original) + out;
}

std::optional<std::string> decompress_log_text(std::string_view stored) {
    std::uint32_t original = 0;
    if (stored.size() < sizeof original) {
        return std::nullopt;
    }
    std::memcpy(&original, stored.data(), sizeof original);
    std::string out(original, '\0');
    uLongf size = original;
    if (uncompress(reinterpret_cast<Bytef*>(out.data()),
                   &size,
                   reinterpret_cast<const Bytef*>(stored.data() + sizeof original),
                   static_cast<uLong>(stored.size() - sizeof original)) != Z_OK ||
        size != original) {
        return std::nullopt;
    }
    return out;
}

} // namespace ci::store::detail
