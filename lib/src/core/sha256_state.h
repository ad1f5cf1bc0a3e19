#pragma once

// SHA-256 and HMAC-SHA256 for hot paths (request signing, payload hashing), private to libci.
//
// OpenSSL 3's EVP interface dispatches through providers: for the few hundred bytes of a SigV4
// canonical request that dispatch (context allocation, algorithm fetch) costs more than the
// hashing itself. These wrappers use OpenSSL's one-algorithm SHA-256 routines, the same
// assembly, with state that is a plain value: copying a pre-keyed HMAC state is a memcpy.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>

#include <openssl/crypto.h>
#include <openssl/sha.h>

// OpenSSL 3 marks these routines deprecated in favour of EVP, but keeps them; they are what this
// header is for (see above).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace ci::crypto::detail {

using Digest = std::array<std::uint8_t, 32>;

/// An incremental SHA-256 that can be copied.
class Sha256State {
public:
    Sha256State() noexcept { SHA256_Init(&ctx_); }
    void update(std::string_view data) noexcept { SHA256_Update(&ctx_, data.data(), data.size()); }
    void update(const Digest& data) noexcept { SHA256_Update(&ctx_, data.data(), data.size()); }
    [[nodiscard]] Digest finish() noexcept {
        Digest out{};
        SHA256_Final(out.data(), &ctx_);
        return out;
    }

private:
    SHA256_CTX ctx_{};
};

/// SHA-256 of `data`.
[[nodiscard]] inline Digest sha256(std::string_view data) noexcept {
    Sha256State state;
    state.update(data);
    return state.finish();
}

/// An HMAC-SHA256 key with its inner and outer states computed once (RFC 2104), so that each MAC
/// costs only the hashing of the message and of one digest.
class HmacSha256Key {
public:
    explicit HmacSha256Key(std::string_view key) noexcept {
        std::array<std::uint8_t, 64> block{};
        if (key.size() > block.size()) {
            const Digest hashed = detail::sha256(key);
            std::copy(hashed.begin(), hashed.end(), block.begin());
        } else {
            std::copy(key.begin(), key.end(), block.begin());
        }
        std::array<std::uint8_t, 64> pad{};
        for (std::size_t i = 0; i < block.size(); ++i) {
            pad[i] = static_cast<std::uint8_t>(block[i] ^ 0x36U);
        }
        inner_.update(std::string_view(reinterpret_cast<const char*>(pad.data()), pad.size()));
        for (std::size_t i = 0; i < block.size(); ++i) {
            pad[i] = static_cast<std::uint8_t>(block[i] ^ 0x5cU);
        }
        outer_.update(std::string_view(reinterpret_cast<const char*>(pad.data()), pad.size()));
        OPENSSL_cleanse(block.data(), block.size());
        OPENSSL_cleanse(pad.data(), pad.size());
    }
    explicit HmacSha256Key(const Digest& key) noexcept
        : HmacSha256Key(std::string_view(reinterpret_cast<const char*>(key.data()), key.size())) {}

    /// HMAC-SHA256(key, message).
    [[nodiscard]] Digest mac(std::string_view message) const noexcept {
        Sha256State inner = inner_;
        inner.update(message);
        Sha256State outer = outer_;
        outer.update(inner.finish());
        return outer.finish();
    }

private:
    Sha256State inner_;
    Sha256State outer_;
};

} // namespace ci::crypto::detail

#pragma GCC diagnostic pop
