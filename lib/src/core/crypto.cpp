#include "ci/core/crypto.h"

#include <cerrno>
#include <climits>
#include <cstring>
#include <fcntl.h>
#include <new>
#include <unistd.h>
#include <vector>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/sha256_state.h"

namespace ci::crypto {

// The one-algorithm routines of sha256_state.h: the same assembly as EVP, without EVP's
// per-call provider dispatch (an HMAC() call fetches its algorithms each time; for a 4 KiB
// webhook that cost more than the hashing).
Digest sha256(std::string_view data) noexcept {
    return detail::sha256(data);
}

Digest hmac_sha256(std::string_view key, std::string_view data) noexcept {
    return detail::HmacSha256Key(key).mac(data);
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr std::string_view digits = "0123456789abcdef";
    std::string out(bytes.size() * 2, '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        out[2 * i] = digits[bytes[i] >> 4U];
        out[2 * i + 1] = digits[bytes[i] & 0x0FU];
    }
    return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
    // The length of a signature or token is public; its content is not.
    if (a.size() != b.size()) {
        return false;
    }
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status random_bytes(std::span<std::uint8_t> out) {
    while (!out.empty()) {
        const auto chunk = std::min<std::size_t>(out.size(), INT_MAX);
        if (RAND_bytes(out.data(), static_cast<int>(chunk)) != 1) {
            return fail(ErrorCode::Internal, "read random bytes: the CSPRNG is not seeded");
        }
        out = out.subspan(chunk);
    }
    return {};
}

Result<std::string> random_token(std::size_t bytes) {
    if (bytes == 0) {
        return fail(ErrorCode::InvalidArgument, "random token: length must be positive");
    }
    std::vector<std::uint8_t> buffer(bytes);
    if (auto status = random_bytes(buffer); !status) {
        return fail(status.error());
    }
    auto token = to_hex(buffer);
    OPENSSL_cleanse(buffer.data(), buffer.size());
    return token;
}

std::string base64_encode(std::string_view data) {
    // EVP_EncodeBlock writes 4 characters per 3 bytes, then a NUL.
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                        reinterpret_cast<const unsigned char*>(data.data()),
                                        static_cast<int>(data.size()));
    out.resize(static_cast<std::size_t>(written));
    return out;
}

namespace {

// A base64 character's 6 bits; -1 for any other character.
int base64_value(char c) {
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    return c == '/' ? 63 : -1;
}

} // namespace

std::optional<std::string> base64_decode(std::string_view text) {
    if (text.size() % 4 == 0 && text.ends_with("==")) {
        text.remove_suffix(2);
    } else if (text.size() % 4 == 0 && text.ends_with('=')) {
        text.remove_suffix(1);
    }
    if (text.size() % 4 == 1) {
        return std::nullopt;
    }
    std::string out;
    out.reserve(text.size() / 4 * 3 + 2);
    std::uint32_t bits = 0;
    int count = 0;
    for (const char c : text) {
        const int value = base64_value(c);
        if (value < 0) {
            return std::nullopt;
        }
        bits = (bits << 6U) | static_cast<std::uint32_t>(value);
        count += 6;
        if (count >= 8) {
            count -= 8;
            out.push_back(static_cast<char>((bits >> static_cast<unsigned>(count)) & 0xFFU));
        }
    }
    // What is left must be the zero bits that pad the last character.
    if ((bits & ((1U << static_cast<unsigned>(count)) - 1U)) != 0) {
        return std::nullopt;
    }
    return out;
}

Result<Digest> sha256_file(const std::filesystem::path& path) {
    const auto error = [&](int number) {
        const ErrorCode code = number == ENOENT   ? ErrorCode::NotFound
                               : number == EACCES ? ErrorCode::PermissionDenied
                                                  : ErrorCode::Io;
        return fail(code, fmt::format("hash {}: {}", path.string(), std::strerror(number)), number);
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return error(errno);
    }
    // Tell the kernel to read ahead aggressively: the file is read once, front to back.
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    constexpr std::size_t block = 1U << 20U;
    // Not zero-filled: a megabyte of memset would cost more than hashing a small file. (A heap
    // array, which modernize-avoid-c-arrays cannot tell from one on the stack.)
    // NOLINTNEXTLINE(modernize-avoid-c-arrays)
    const auto buffer = std::make_unique_for_overwrite<char[]>(block);

    detail::Sha256State state;
    for (;;) {
        const ssize_t n = ::read(fd, buffer.get(), block);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            const int number = errno;
            ::close(fd);
            return error(number);
        }
        if (n == 0) {
            break;
        }
        state.update(std::string_view(buffer.get(), static_cast<std::size_t>(n)));
    }
    ::close(fd);
    return state.finish();
}

struct Sha256::Impl {
    EVP_MD_CTX* ctx = nullptr;
    Impl() : ctx(EVP_MD_CTX_new()) {
        if (ctx == nullptr) {
            throw std::bad_alloc();
        }
        EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    }
    ~Impl() { EVP_MD_CTX_free(ctx); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view data) noexcept {
    EVP_DigestUpdate(impl_->ctx, data.data(), data.size());
}

Digest Sha256::finish() noexcept {
    Digest out{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(impl_->ctx, out.data(), &length);
    EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
    return out;
}

} // namespace ci::crypto
