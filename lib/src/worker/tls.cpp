#include "worker/tls.h"

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <memory>
#include <span>
#include <sstream>
#include <unistd.h>

#include <fmt/format.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <ci/core/crypto.h>

namespace ci::worker::tls {

namespace {

template <class T, void (*Free)(T*)> struct Deleter {
    void operator()(T* p) const { Free(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;

Result<std::string> read_file(const std::filesystem::path& path, std::string_view what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return fail(
            ErrorCode::NotFound,
            fmt::format("{}: cannot read {}: {}", what, path.string(), std::strerror(errno)));
    }
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

BioPtr memory_bio(const std::string& text) {
    return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

Result<X509Ptr> load_certificate(const std::filesystem::path& path, std::string_view what) {
    auto text = read_file(path, what);
    if (!text) {
        return fail(text.error());
    }
    auto bio = memory_bio(*text);
    X509Ptr certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!certificate) {
        return fail(
            ErrorCode::InvalidArgument,
            fmt::format("{}: {} holds no PEM certificate ({})", what, path.string(), last_error()));
    }
    return certificate;
}

Result<KeyPtr> load_key(const std::filesystem::path& path, std::string_view what) {
    auto text = read_file(path, what);
    if (!text) {
        return fail(text.error());
    }
    auto bio = memory_bio(*text);
    KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    if (!key) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: {} holds no PEM private key (an encrypted key is not "
                                "supported) ({})",
                                what,
                                path.string(),
                                last_error()));
    }
    return key;
}

// Writes `text` to `path` through a temporary file in the same directory (mode `mode`), so that
// a crash leaves the old file or the new one, never half of one.
Status write_private(const std::filesystem::path& path, const std::string& text, mode_t mode) {
    const auto temporary = path.string() + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        return fail(
            ErrorCode::Io, fmt::format("create {}: {}", temporary, std::strerror(errno)), errno);
    }
    std::size_t written = 0;
    while (written < text.size()) {
        const auto n = ::write(fd, text.data() + written, text.size() - written);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            const int error = errno;
            ::close(fd);
            return fail(
                ErrorCode::Io, fmt::format("write {}: {}", temporary, std::strerror(error)), error);
        }
        written += static_cast<std::size_t>(n);
    }
    (void)::fchmod(fd, mode); // whatever the umask did
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
        return fail(ErrorCode::Io, fmt::format("write {}: {}", temporary, std::strerror(errno)));
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        return fail(
            ErrorCode::Io,
            fmt::format("rename {} to {}: {}", temporary, path.string(), std::strerror(errno)));
    }
    return {};
}

std::string pem_of(const std::function<int(BIO*)>& write) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (!bio || write(bio.get()) != 1) {
        return {};
    }
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return {data, static_cast<std::size_t>(size)};
}

bool add_extension(X509* certificate, int nid, const std::string& value) {
    X509V3_CTX context;
    X509V3_set_ctx_nodb(&context);
    X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
    X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
    if (extension == nullptr) {
        return false;
    }
    const bool added = X509_add_ext(certificate, extension, -1) == 1;
    X509_EXTENSION_free(extension);
    return added;
}

Result<std::pair<std::string, std::string>> make_self_signed(const std::string& host) {
    KeyPtr key(EVP_EC_gen("P-256"));
    X509Ptr certificate(X509_new());
    if (!key || !certificate) {
        return fail(ErrorCode::Io, "create an ECDSA P-256 key: " + last_error());
    }
    std::array<std::uint8_t, 16> serial{};
    if (auto random = crypto::random_bytes(serial); !random) {
        return fail(random.error());
    }
    serial[0] &= 0x7f; // a positive serial number
    BnPtr number(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
    const bool host_is_ip = host.find_first_not_of("0123456789.") == std::string::npos ||
                            host.find(':') != std::string::npos;
    constexpr long ten_years = 10L * 365 * 24 * 3600;
    X509_NAME* name = X509_get_subject_name(certificate.get());
    const bool made =
        number && X509_set_version(certificate.get(), 2) == 1 &&
        BN_to_ASN1_INTEGER(number.get(), X509_get_serialNumber(certificate.get())) != nullptr &&
        X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600) != nullptr &&
        X509_gmtime_adj(X509_getm_notAfter(certificate.get()), ten_years) != nullptr &&
        X509_set_pubkey(certificate.get(), key.get()) == 1 &&
        X509_NAME_add_entry_by_txt(name,
                                   "CN",
                                   MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(host.c_str()),
                                   -1,
                                   -1,
                                   0) == 1 &&
        X509_set_issuer_name(certificate.get(), name) == 1 &&
        add_extension(
            certificate.get(), NID_subject_alt_name, (host_is_ip ? "IP:" : "DNS:") + host) &&
        add_extension(certificate.get(), NID_basic_constraints, "critical,CA:FALSE") &&
        add_extension(certificate.get(), NID_key_usage, "critical,digitalSignature") &&
        add_extension(certificate.get(), NID_ext_key_usage, "serverAuth") &&
        X509_sign(certificate.get(), key.get(), EVP_sha256()) > 0;
    if (!made) {
        return fail(ErrorCode::Io,
                    fmt::format("create a certificate for \"{}\": {}", host, last_error()));
    }
    auto key_pem = pem_of([&](BIO* bio) {
        return PEM_write_bio_PrivateKey(bio, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    });
    auto cert_pem = pem_of([&](BIO* bio) { return PEM_write_bio_X509(bio, certificate.get()); });
    return std::pair{std::move(cert_pem), std::move(key_pem)};
}

} // namespace

std::string last_error() {
    std::string text;
    while (const unsigned long code = ERR_get_error()) {
        std::array<char, 256> buffer{};
        ERR_error_string_n(code, buffer.data(), buffer.size());
        if (!text.empty()) {
            text += "; ";
        }
        text += buffer.data();
    }
    return text.empty() ? std::string("unknown OpenSSL error") : text;
}

std::string fingerprint(X509* certificate) {
    std::array<std::uint8_t, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    if (certificate == nullptr ||
        X509_digest(certificate, EVP_sha256(), digest.data(), &size) != 1) {
        return {};
    }
    return "sha256:" + crypto::to_hex(std::span<const std::uint8_t>(digest.data(), size));
}

Result<std::string> fingerprint_of_file(const std::filesystem::path& pem) {
    auto certificate = load_certificate(pem, "certificate");
    if (!certificate) {
        return fail(certificate.error());
    }
    return fingerprint(certificate->get());
}

Result<std::string> parse_fingerprint(std::string_view text) {
    constexpr std::string_view prefix = "sha256:";
    const auto bad = [&] {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("fingerprint \"{}\": expected sha256: and 64 hex digits (what "
                                "`ci-master fingerprint` prints)",
                                text));
    };
    if (!text.starts_with(prefix)) {
        return bad();
    }
    std::string hex;
    for (const char c : text.substr(prefix.size())) {
        if (c == ':') {
            continue;
        }
        if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
            return bad();
        }
        hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (hex.size() != 64) {
        return bad();
    }
    return std::string(prefix) + hex;
}

std::string exporter(SSL* ssl) {
    std::array<std::uint8_t, 32> out{};
    if (ssl == nullptr || SSL_export_keying_material(ssl,
                                                     out.data(),
                                                     out.size(),
                                                     exporter_label.data(),
                                                     exporter_label.size(),
                                                     nullptr,
                                                     0,
                                                     0) != 1) {
        return {};
    }
    return crypto::to_hex(out);
}

Result<CertificateFiles> ensure_self_signed(const std::filesystem::path& dir,
                                            const std::string& host) {
    CertificateFiles files{dir / "cert.pem", dir / "key.pem"};
    std::error_code error;
    if (std::filesystem::exists(files.cert, error) && std::filesystem::exists(files.key, error)) {
        return files;
    }
    std::filesystem::create_directories(dir, error);
    if (error) {
        return fail(ErrorCode::Io, fmt::format("create {}: {}", dir.string(), error.message()));
    }
    auto made = make_self_signed(host);
    if (!made) {
        return fail(made.error());
    }
    // The key first: a certificate on disk always has its key.
    if (auto written = write_private(files.key, made->second, 0600); !written) {
        return fail(written.error());
    }
    if (auto written = write_private(files.cert, made->first, 0644); !written) {
        return fail(written.error());
    }
    return files;
}

Status check_certificate(const CertificateFiles& files,
                         std::string_view cert_what,
                         std::string_view key_what) {
    auto certificate = load_certificate(files.cert, cert_what);
    if (!certificate) {
        return fail(certificate.error());
    }
    auto key = load_key(files.key, key_what);
    if (!key) {
        return fail(key.error());
    }
    if (X509_check_private_key(certificate->get(), key->get()) != 1) {
        (void)last_error();
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("{}: the key in {} does not belong to the certificate in {} ({})",
                                key_what,
                                files.key.string(),
                                files.cert.string(),
                                cert_what));
    }
    return {};
}

Result<std::string> ticket_keys(const std::filesystem::path& file) {
    constexpr std::size_t size = 80; // name 16, HMAC key 32, AES key 32 (OpenSSL's layout)
    if (auto text = read_file(file, "session ticket keys"); text && text->size() == size) {
        return std::move(*text);
    }
    std::array<std::uint8_t, size> keys{};
    if (auto random = crypto::random_bytes(keys); !random) {
        return fail(random.error());
    }
    std::string text(reinterpret_cast<const char*>(keys.data()), keys.size());
    std::error_code error;
    std::filesystem::create_directories(file.parent_path(), error);
    if (auto written = write_private(file, text, 0600); !written) {
        return fail(written.error());
    }
    return text;
}

} // namespace ci::worker::tls
