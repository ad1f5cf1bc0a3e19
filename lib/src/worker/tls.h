#pragma once

// TLS on the worker port, the parts both sides share (OpenSSL 3): certificate fingerprints, the
// exporter value a worker's proof is bound to (RFC 5705), and the master's certificate (loaded,
// or created self-signed on first start). The connections themselves are in agent.cpp (worker)
// and lib/src/master/worker_server.cpp (master).

#include <filesystem>
#include <string>
#include <string_view>

#include <openssl/ssl.h>

#include <ci/core/error.h>

namespace ci::worker::tls {

/// The label of the exporter value (RFC 5705) a worker's proof covers: a proof made for one TLS
/// connection is worthless on any other, e.g. relayed by a proxy that terminates TLS.
inline constexpr std::string_view exporter_label = "EXPORTER-libci-worker-proof";

/// "sha256:" and the lowercase hex SHA-256 of the certificate's DER encoding (what `openssl x509
/// -fingerprint -sha256` shows, without colons).
[[nodiscard]] std::string fingerprint(X509* certificate);

/// The fingerprint of the first certificate of a PEM file. Fails (NotFound, InvalidArgument)
/// naming the file.
[[nodiscard]] Result<std::string> fingerprint_of_file(const std::filesystem::path& pem);

/// Checks a `--fingerprint` argument: "sha256:" and 64 hex digits (colons between bytes
/// allowed, as openssl prints them); returns it as fingerprint() writes them.
[[nodiscard]] Result<std::string> parse_fingerprint(std::string_view text);

/// 32 bytes of the connection's exporter (exporter_label, no context), as hex; empty when the
/// handshake has not completed.
[[nodiscard]] std::string exporter(SSL* ssl);

/// The master's certificate and key files.
struct CertificateFiles {
    std::filesystem::path cert;
    std::filesystem::path key;
};

/// The self-signed certificate in `dir` (cert.pem, key.pem): created when missing, an ECDSA
/// P-256 key (mode 0600) and a certificate for `host` (a DNS name or an IP address) valid for
/// ten years; reused as it is otherwise. Fails (Io) naming the file it could not write.
[[nodiscard]] Result<CertificateFiles> ensure_self_signed(const std::filesystem::path& dir,
                                                          const std::string& host);

/// Loads both files and checks that the key belongs to the certificate. Errors name `what`
/// (the config key, e.g. "buildmaster.tls.cert") and the file.
[[nodiscard]] Status check_certificate(const CertificateFiles& files,
                                       std::string_view cert_what,
                                       std::string_view key_what);

/// 80 bytes of session-ticket keys in `file` (mode 0600; created from the CSPRNG when missing),
/// so that tickets a master issued stay valid across its restarts.
[[nodiscard]] Result<std::string> ticket_keys(const std::filesystem::path& file);

/// The text of OpenSSL's last errors (cleared), for messages.
[[nodiscard]] std::string last_error();

} // namespace ci::worker::tls
