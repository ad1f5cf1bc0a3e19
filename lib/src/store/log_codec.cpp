#include "store/log_codec.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <zlib.h>

#if CI_HAVE_LIBDEFLATE
#include <libdeflate.h>
#endif

namespace ci::store::detail {

namespace {

using Size = std::uint32_t; // the original size, first in a stored chunk

#if CI_HAVE_LIBDEFLATE
// One compressor per thread (it holds about 100 KB of tables); level 1, as with zlib.
libdeflate_compressor* compressor() {
    thread_local const std::unique_ptr<libdeflate_compressor, decltype(&libdeflate_free_compressor)>
        compressor(libdeflate_alloc_compressor(1), &libdeflate_free_compressor);
    return compressor.get();
}

// One decompressor per thread (about 10 KB).
libdeflate_decompressor* decompressor() {
    thread_local const std::unique_ptr<libdeflate_decompressor,
                                       decltype(&libdeflate_free_decompressor)>
        decompressor(libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
    return decompressor.get();
}
#endif

} // namespace

// Logs compress about tenfold; the fastest level keeps ingest cheap. libdeflate, when libci was
// built with it, writes the same zlib format as zlib (uncompress() reads both) at about twice
// zlib's speed.
std::string compress_log_text(std::string_view text) {
    const auto original = static_cast<Size>(text.size());
    std::string out;
#if CI_HAVE_LIBDEFLATE
    if (auto* deflater = compressor()) {
        const auto bound = libdeflate_zlib_compress_bound(deflater, text.size());
        out.resize(sizeof original + bound);
        const auto size = libdeflate_zlib_compress(
            deflater, text.data(), text.size(), out.data() + sizeof original, bound);
        if (size != 0) {
            std::memcpy(out.data(), &original, sizeof original);
            out.resize(sizeof original + size);
            return out;
        }
    }
#endif
    uLongf size = compressBound(static_cast<uLong>(text.size()));
    out.resize(sizeof original + size);
    compress2(reinterpret_cast<Bytef*>(out.data() + sizeof original),
              &size,
              reinterpret_cast<const Bytef*>(text.data()),
              static_cast<uLong>(text.size()),
              1);
    // The original size first, so that decompressing needs no guessing.
    std::memcpy(out.data(), &original, sizeof original);
    out.resize(sizeof original + size);
    return out;
}

std::optional<std::string> decompress_log_text(std::string_view stored) {
    Size original = 0;
    if (stored.size() < sizeof original) {
        return std::nullopt;
    }
    std::memcpy(&original, stored.data(), sizeof original);
    std::string out(original, '\0');
#if CI_HAVE_LIBDEFLATE
    // Reads a stored log two to three times as fast as zlib's uncompress() (64 KiB chunks of
    // `seq` output: 600-780 MB/s against 285).
    if (auto* inflater = decompressor()) {
        std::size_t size = 0;
        if (libdeflate_zlib_decompress(inflater,
                                       stored.data() + sizeof original,
                                       stored.size() - sizeof original,
                                       out.data(),
                                       out.size(),
                                       &size) != LIBDEFLATE_SUCCESS ||
            size != original) {
            return std::nullopt;
        }
        return out;
    }
#endif
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
