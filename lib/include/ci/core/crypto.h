#pragma once

/// \file
/// Hashes, MACs, tokens and comparisons that the rest of libci builds on (SigV4 signing, webhook
/// verification, worker passwords, wheel digests). Backed by OpenSSL's libcrypto; no OpenSSL type
/// appears here.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::crypto {

/// A SHA-256 digest.
using Digest = std::array<std::uint8_t, 32>;

/// SHA-256 of `data`.
[[nodiscard]] Digest sha256(std::string_view data) noexcept;

/// HMAC-SHA256 of `data` under `key`.
[[nodiscard]] Digest hmac_sha256(std::string_view key, std::string_view data) noexcept;

/// Lower-case hexadecimal of `bytes`.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);

/// Lower-case hexadecimal of a digest.
[[nodiscard]] inline std::string to_hex(const Digest& digest) {
    return to_hex(std::span<const std::uint8_t>(digest));
}

/// The digest's bytes as a string (for chaining HMACs, as SigV4 key derivation does).
[[nodiscard]] inline std::string_view as_bytes(const Digest& digest) noexcept {
    return {reinterpret_cast<const char*>(digest.data()), digest.size()};
}

/// Compares two strings in time that depends only on their lengths, not on where they differ.
/// Use it for every comparison of a secret or a signature.
[[nodiscard]] bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

/// Fills `out` from the operating system's CSPRNG (through OpenSSL's RAND_bytes).
/// Fails with ErrorCode::Internal if the generator cannot be seeded.
[[nodiscard]] Status random_bytes(std::span<std::uint8_t> out);

/// A new random token of `bytes` random bytes, as lower-case hex (2 × bytes characters).
/// Used for worker passwords, registration tokens and session ids.
[[nodiscard]] Result<std::string> random_token(std::size_t bytes = 32);

/// Standard base64 (RFC 4648, with padding) of `data`: EC2 UserData, Content-MD5 headers.
[[nodiscard]] std::string base64_encode(std::string_view data);

/// Decodes standard base64 (RFC 4648 alphabet `A-Za-z0-9+/`), with or without its `=` padding
/// (PHC strings omit it). nullopt for any other character, a misplaced `=`, a length no encoding
/// has (4n+1 characters) or non-zero bits after the last byte (so each byte string has one
/// encoding only).
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

/// SHA-256 of a file's content, read once in large sequential blocks (an upload's payload hash).
/// Fails with NotFound, PermissionDenied or Io (native: errno), naming the file.
[[nodiscard]] Result<Digest> sha256_file(const std::filesystem::path& path);

/// An incremental SHA-256, for hashing a stream once (an upload's payload, a wheel file).
/// Not thread-safe; movable, not copyable.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    /// Adds `data` to the hash.
    void update(std::string_view data) noexcept;
    /// Returns the digest of everything added; the hasher is then reset for reuse.
    [[nodiscard]] Digest finish() noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace ci::crypto
