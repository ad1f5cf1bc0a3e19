#pragma once

// The worker port's TLS settings from the config: its certificate (configured, or self-signed in
// the data directory) and the session ticket keys kept beside it. The public parts
// (worker_certificate_fingerprint, check_worker_certificate) are in <ci/master/master.h>.

#include <filesystem>

#include <ci/config/config.h>
#include <ci/core/error.h>

#include "master/worker_server.h"

namespace ci::master {

/// What WorkerServer::start needs; logs the certificate's fingerprint (or, with TLS off, a
/// warning). Fails naming the config key and file that cannot be used.
[[nodiscard]] Result<WorkerPortTls> worker_port_tls(const config::Config& config,
                                                    const std::filesystem::path& data_dir);

} // namespace ci::master
