#include "ci/core/password.h"

#include <array>
#include <charconv>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <ci/core/crypto.h>

namespace ci::crypto {

namespace {

constexpr std::size_t salt_bytes = 16;
constexpr std::size_t key_bytes = 32;
constexpr std::size_t min_salt = 8;
constexpr std::size_t max_salt = 64;
constexpr std::size_t min_key = 16;
constexpr std::size_t max_key = 64;
constexpr std::uint64_t max_scrypt_memory = std::uint64_t{256} << 20U;

struct KdfDeleter {
    void operator()(EVP_KDF* kdf) const { EVP_KDF_free(kdf); }
    void operator()(EVP_KDF_CTX* ctx) const { EVP_KDF_CTX_free(ctx); }
};

// Runs OpenSSL's KDF `name` with `params` into `length` bytes.
Result<std::string> derive(const char* name, std::size_t length, OSSL_PARAM* params) {
    const std::unique_ptr<EVP_KDF, KdfDeleter> kdf(EVP_KDF_fetch(nullptr, name, nullptr));
    if (!kdf) {
        return fail(ErrorCode::Internal, fmt::format("{}: not available in this OpenSSL", name));
    }
    const std::unique_ptr<EVP_KDF_CTX, KdfDeleter> ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) {
        return fail(ErrorCode::Internal, fmt::format("{}: out of memory", name));
    }
    std::string out(length, '\0');
    if (EVP_KDF_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), length, params) !=
        1) {
        OPENSSL_cleanse(out.data(), out.size());
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: the parameters are refused (or memory ran out)", name));
    }
    return out;
}

// OSSL_PARAM wants non-const pointers; it only reads these.
void* readable(std::string_view text) {
    static char empty = '\0';
    return text.empty() ? &empty : const_cast<char*>(text.data());
}

// The scrypt memory 128·r·N bytes (what OpenSSL allocates, with 128·r·p for B); nullopt when it
// does not fit in 64 bits.
std::optional<std::uint64_t> scrypt_memory(std::uint64_t n, std::uint64_t r, std::uint64_t p) {
    if (n > (std::uint64_t{1} << 40U) || r > 1024 || p > 1024) {
        return std::nullopt;
    }
    return 128 * r * (n + 2) + 128 * r * p;
}

std::optional<int> to_int(std::string_view text) {
    int value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

// "ln=15,r=8,p=1" -> the values of `names`, in that order; nullopt unless exactly those appear
// (in that order), each an integer.
template <std::size_t N>
std::optional<std::array<int, N>> parameters(std::string_view text,
                                             const std::array<std::string_view, N>& names) {
    std::array<int, N> out{};
    for (std::size_t i = 0; i < N; ++i) {
        const auto comma = text.find(',');
        const auto item = text.substr(0, comma);
        if (!item.starts_with(names[i]) || item.size() <= names[i].size() ||
            item[names[i].size()] != '=') {
            return std::nullopt;
        }
        const auto value = to_int(item.substr(names[i].size() + 1));
        if (!value) {
            return std::nullopt;
        }
        out[i] = *value;
        if ((comma == std::string_view::npos) != (i + 1 == N)) {
            return std::nullopt;
        }
        text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    }
    return out;
}

// A PHC field in unpadded base64 (written so by format_password_hash).
std::string unpadded_base64(std::string_view bytes) {
    auto text = base64_encode(bytes);
    while (text.ends_with('=')) {
        text.pop_back();
    }
    return text;
}

Result<PasswordHash> invalid(std::string_view what) {
    return fail(ErrorCode::InvalidArgument, fmt::format("not a password hash: {}", what));
}

} // namespace

Result<std::string> scrypt(std::string_view password,
                           std::string_view salt,
                           std::uint64_t n,
                           std::uint32_t r,
                           std::uint32_t p,
                           std::size_t length) {
    const auto memory = scrypt_memory(n, r, p);
    if (!memory) {
        return fail(ErrorCode::InvalidArgument, "scrypt: parameters out of range");
    }
    // OpenSSL refuses more than 32 MiB unless told; N = 2^15, r = 8 needs just over that.
    std::uint64_t max_memory = *memory + (std::uint64_t{1} << 20U);
    std::array<OSSL_PARAM, 7> params{
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_PASSWORD, readable(password), password.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, readable(salt), salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &max_memory),
        OSSL_PARAM_construct_end()};
    return derive(OSSL_KDF_NAME_SCRYPT, length, params.data());
}

Result<std::string> pbkdf2_sha256(std::string_view password,
                                  std::string_view salt,
                                  std::uint32_t iterations,
                                  std::size_t length) {
    std::uint64_t iter = iterations;
    // 1: no SP 800-132 lower bounds (RFC test vectors use 1 iteration and a 4-byte salt);
    // parse_password_hash sets the config's own bounds.
    int no_lower_bounds = 1;
    std::array<char, 7> digest{"SHA256"};
    std::array<OSSL_PARAM, 6> params{
        OSSL_PARAM_construct_octet_string(
            OSSL_KDF_PARAM_PASSWORD, readable(password), password.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, readable(salt), salt.size()),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest.data(), 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_PKCS5, &no_lower_bounds),
        OSSL_PARAM_construct_end()};
    return derive(OSSL_KDF_NAME_PBKDF2, length, params.data());
}

Result<PasswordHash> parse_password_hash(std::string_view text) {
    // "$scrypt$ln=15,r=8,p=1$SALT$HASH": split at '$', the first field empty.
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    while (fields.size() < 6) {
        const auto dollar = text.find('$', start);
        fields.push_back(text.substr(start, dollar - start));
        if (dollar == std::string_view::npos) {
            break;
        }
        start = dollar + 1;
    }
    if (fields.size() >= 3 && fields[0].empty() && fields[1] != "scrypt" &&
        fields[1] != "pbkdf2-sha256") {
        return invalid("the algorithm must be scrypt or pbkdf2-sha256");
    }
    if (fields.size() != 5 || !fields[0].empty()) {
        return invalid("expected $scrypt$ln=N,r=R,p=P$SALT$HASH or "
                       "$pbkdf2-sha256$i=N$SALT$HASH (ci-master hash-password writes one)");
    }
    PasswordHash out;
    if (fields[1] == "scrypt") {
        const auto values = parameters<3>(fields[2], {"ln", "r", "p"});
        if (!values) {
            return invalid("scrypt parameters must be ln=N,r=R,p=P");
        }
        out.log2_n = (*values)[0];
        out.r = (*values)[1];
        out.p = (*values)[2];
        if (out.log2_n < 1 || out.log2_n > 24 || out.r < 1 || out.r > 32 || out.p < 1 ||
            out.p > 16) {
            return invalid("scrypt parameters out of range (ln 1-24, r 1-32, p 1-16)");
        }
        const auto memory = scrypt_memory(std::uint64_t{1} << static_cast<unsigned>(out.log2_n),
                                          static_cast<std::uint64_t>(out.r),
                                          static_cast<std::uint64_t>(out.p));
        if (!memory || *memory > max_scrypt_memory) {
            return invalid("scrypt parameters need more than 256 MiB (128 * r * 2^ln bytes)");
        }
    } else {
        const auto values = parameters<1>(fields[2], {"i"});
        if (!values || (*values)[0] < 1000 || (*values)[0] > 10000000) {
            return invalid("pbkdf2-sha256 parameters must be i=N with N 1000 to 10,000,000");
        }
        out.kind = PasswordHash::Kind::Pbkdf2Sha256;
        out.iterations = (*values)[0];
    }
    auto salt = base64_decode(fields[3]);
    auto hash = base64_decode(fields[4]);
    if (!salt || !hash) {
        return invalid("the salt and the hash must be base64");
    }
    if (salt->size() < min_salt || salt->size() > max_salt) {
        return invalid(fmt::format("the salt must be {} to {} bytes", min_salt, max_salt));
    }
    if (hash->size() < min_key || hash->size() > max_key) {
        return invalid(fmt::format("the hash must be {} to {} bytes", min_key, max_key));
    }
    out.salt = std::move(*salt);
    out.hash = std::move(*hash);
    return out;
}

std::string format_password_hash(const PasswordHash& hash) {
    const auto parameters = hash.kind == PasswordHash::Kind::Scrypt
                                ? fmt::format("scrypt$ln={},r={},p={}", hash.log2_n, hash.r, hash.p)
                                : fmt::format("pbkdf2-sha256$i={}", hash.iterations);
    return fmt::format(
        "${}${}${}", parameters, unpadded_base64(hash.salt), unpadded_base64(hash.hash));
}

namespace {

Result<std::string> derive_key(const PasswordHash& hash, std::string_view password) {
    if (hash.kind == PasswordHash::Kind::Scrypt) {
        return scrypt(password,
                      hash.salt,
                      std::uint64_t{1} << static_cast<unsigned>(hash.log2_n),
                      static_cast<std::uint32_t>(hash.r),
                      static_cast<std::uint32_t>(hash.p),
                      hash.hash.size());
    }
    return pbkdf2_sha256(
        password, hash.salt, static_cast<std::uint32_t>(hash.iterations), hash.hash.size());
}

} // namespace

Result<PasswordHash> hash_password(std::string_view password, PasswordHash::Kind kind) {
    PasswordHash out;
    out.kind = kind;
    std::array<std::uint8_t, salt_bytes> salt{};
    if (auto status = random_bytes(salt); !status) {
        return fail(status.error());
    }
    out.salt.assign(reinterpret_cast<const char*>(salt.data()), salt.size());
    out.hash.assign(key_bytes, '\0');
    auto key = derive_key(out, password);
    if (!key) {
        return fail(ErrorCode::Internal, key.error().message);
    }
    out.hash = std::move(*key);
    return out;
}

bool verify_password(const PasswordHash& hash, std::string_view password) {
    auto key = derive_key(hash, password);
    if (!key) {
        return false;
    }
    const bool equal = constant_time_equal(*key, hash.hash);
    OPENSSL_cleanse(key->data(), key->size());
    return equal;
}

} // namespace ci::crypto
