// The worker port's certificate: the configured one, or a self-signed one the master keeps in
// its data directory; and the TLS settings the worker server starts with.

#include "master/worker_certificate.h"

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/master/master.h>

#include "worker/tls.h"

namespace ci::master {

namespace {

Result<worker::tls::CertificateFiles> certificate_files(const config::Config& config,
                                                        const std::filesystem::path& data_dir) {
    const auto& tls = config.buildmaster.tls;
    if (!tls.cert.empty()) {
        worker::tls::CertificateFiles files{tls.cert, tls.key};
        if (auto checked = worker::tls::check_certificate(
                files, "buildmaster.tls.cert", "buildmaster.tls.key");
            !checked) {
            return fail(checked.error());
        }
        return files;
    }
    return worker::tls::ensure_self_signed(data_dir / "tls", config.buildmaster.host);
}

} // namespace

Result<std::string> worker_certificate_fingerprint(const config::Config& config,
                                                   const std::filesystem::path& data_dir,
                                                   MissingCertificate missing) {
    if (!config.buildmaster.tls.enabled) {
        return fail(ErrorCode::InvalidArgument,
                    "buildmaster.tls is false: the worker port has no certificate");
    }
    if (const auto cert = data_dir / "tls" / "cert.pem";
        config.buildmaster.tls.cert.empty() && missing == MissingCertificate::Refuse) {
        std::error_code error;
        if (!std::filesystem::exists(cert, error)) {
            return fail(ErrorCode::NotFound,
                        fmt::format("no certificate in {}: is {} the master's --data-dir? (the "
                                    "master creates it on its first start; `ci-master fingerprint "
                                    "--create` creates one there now)",
                                    cert.string(),
                                    data_dir.string()));
        }
    }
    auto files = certificate_files(config, data_dir);
    if (!files) {
        return fail(files.error());
    }
    return worker::tls::fingerprint_of_file(files->cert);
}

Status check_worker_certificate(const config::Config& config) {
    const auto& tls = config.buildmaster.tls;
    if (!tls.enabled || tls.cert.empty()) {
        return {};
    }
    return worker::tls::check_certificate(
        {tls.cert, tls.key}, "buildmaster.tls.cert", "buildmaster.tls.key");
}

Result<WorkerPortTls> worker_port_tls(const config::Config& config,
                                      const std::filesystem::path& data_dir) {
    WorkerPortTls settings;
    settings.enabled = config.buildmaster.tls.enabled;
    if (!settings.enabled) {
        log::warn("buildmaster.tls is false: the worker port speaks plaintext; builds, logs and "
                  "commands cross the network unencrypted (workers need --insecure)");
        return settings;
    }
    auto files = certificate_files(config, data_dir);
    if (!files) {
        return fail(files.error());
    }
    auto fingerprint = worker::tls::fingerprint_of_file(files->cert);
    if (!fingerprint) {
        return fail(fingerprint.error());
    }
    auto keys = worker::tls::ticket_keys(data_dir / "tls" / "tickets.key");
    if (!keys) {
        return fail(keys.error());
    }
    settings.cert = files->cert;
    settings.key = files->key;
    settings.fingerprint = *fingerprint;
    settings.ticket_keys = std::move(*keys);
    log::info("worker port: TLS 1.3 with {} ({}); its fingerprint: {}",
              settings.cert.string(),
              config.buildmaster.tls.cert.empty()
                  ? "self-signed for buildmaster.host \"" + config.buildmaster.host + "\""
                  : "buildmaster.tls.cert",
              *fingerprint);
    return settings;
}

} // namespace ci::master
