#pragma once

/// \file
/// Password hashes for the config's `auth.users` (docs/config.md): scrypt or PBKDF2-HMAC-SHA256
/// through OpenSSL 3's EVP_KDF, written as PHC strings that name their own algorithm and
/// parameters, so that a hash made with other parameters keeps verifying:
///
///     $scrypt$ln=15,r=8,p=1$SALT$HASH           (N = 2^ln)
///     $pbkdf2-sha256$i=600000$SALT$HASH
///
/// SALT and HASH are standard base64 without padding (as the PHC string format writes them;
/// padding is accepted). No OpenSSL type appears here.

#include <cstdint>
#include <string>
#include <string_view>

#include <ci/core/error.h>

namespace ci::crypto {

/// One parsed password hash.
struct PasswordHash {
    enum class Kind { Scrypt, Pbkdf2Sha256 };
    Kind kind = Kind::Scrypt;
    int log2_n = 15;         ///< scrypt: N = 2^log2_n (1..24), at most 256 MiB (128·r·N bytes)
    int r = 8;               ///< scrypt: block size (1..32)
    int p = 1;               ///< scrypt: parallelism (1..16)
    int iterations = 600000; ///< PBKDF2: 1000..10,000,000 (OWASP 2023: 600,000 for SHA-256)
    std::string salt;        ///< bytes (8..64)
    std::string hash;        ///< the derived key (16..64 bytes)
    friend bool operator==(const PasswordHash&, const PasswordHash&) = default;
};

/// Parses a PHC string as written above. Fails with InvalidArgument saying what is wrong (an
/// unknown algorithm, a parameter out of range, bad base64, a salt or hash of a wrong length);
/// the message never repeats the text (it may be a secret pasted in the wrong place).
[[nodiscard]] Result<PasswordHash> parse_password_hash(std::string_view text);

/// The PHC string of `hash` (what parse_password_hash reads back).
[[nodiscard]] std::string format_password_hash(const PasswordHash& hash);

/// A new hash of `password` with a random 16-byte salt and a 32-byte key: scrypt with
/// N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s), or PBKDF2-HMAC-SHA256 with 600,000 iterations.
/// Fails with Internal when the CSPRNG or the KDF fails.
[[nodiscard]] Result<PasswordHash>
hash_password(std::string_view password, PasswordHash::Kind kind = PasswordHash::Kind::Scrypt);

/// True when `password` derives `hash.hash` with its salt and parameters; the derived keys are
/// compared in constant time (CRYPTO_memcmp). False when the KDF fails (out of memory).
/// Costs what the parameters say (scrypt's memory included): thread-safe, but callers bound how
/// many run at once.
[[nodiscard]] bool verify_password(const PasswordHash& hash, std::string_view password);

/// scrypt (RFC 7914) of `password` and `salt`: `length` bytes. Fails with InvalidArgument for
/// parameters OpenSSL refuses, Internal when it fails otherwise.
[[nodiscard]] Result<std::string> scrypt(std::string_view password,
                                         std::string_view salt,
                                         std::uint64_t n,
                                         std::uint32_t r,
                                         std::uint32_t p,
                                         std::size_t length);

/// PBKDF2-HMAC-SHA256 (RFC 8018) of `password` and `salt`: `length` bytes.
[[nodiscard]] Result<std::string> pbkdf2_sha256(std::string_view password,
                                                std::string_view salt,
                                                std::uint32_t iterations,
                                                std::size_t length);

} // namespace ci::crypto
