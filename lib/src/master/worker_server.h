#pragma once

// The worker protocol's network side: accepts connections on the worker port, speaks TLS 1.3
// on them (unless `buildmaster.tls: false`), authenticates them (challenge, HMAC proof bound to
// the TLS connection), and hands each authenticated worker's messages to the master.
// One I/O thread serves every connection; 1,000 idle workers cost a socket, a TLS session and a
// buffer each.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <ci/core/error.h>

namespace ci::master {

class WorkerEvents;

/// TLS on the worker port.
struct WorkerPortTls {
    bool enabled = true;        ///< false: plaintext, each connection logged as unencrypted
    std::filesystem::path cert; ///< PEM chain, the master's certificate first
    std::filesystem::path key;  ///< PEM private key
    std::string fingerprint;    ///< the certificate's, "sha256:HEX" (what workers pin)
    /// 80 bytes of session ticket keys (worker::tls::ticket_keys): tickets stay valid across
    /// restarts, so reconnecting workers resume their sessions instead of full handshakes.
    std::string ticket_keys;
};

/// The worker port's limits (`buildmaster.limits`). Connections open at once, in all and from
/// one address (an IPv6 address counts by its /64): one over either is closed as soon as it is
/// accepted, before TLS or a hello, and counted in a log line once per 10 s.
struct WorkerPortLimits {
    std::size_t max_connections = 2048;
    /// Workers behind one NAT address (EC2 in a private subnet) share this.
    std::size_t max_connections_per_address = 256;
    /// A hello must arrive this long after the connection opened (TLS handshake included), or
    /// the connection is closed.
    std::chrono::seconds hello_timeout{10};
};

/// What a class's workers get right after their Welcome (`worker_files`): the encoded
/// protocol::WorkerFile messages, one after the other (one text shared by every connection
/// that sends it), and how many there are (for the log). The text holds secrets: never logged.
struct ClassFiles {
    std::shared_ptr<const std::string> messages;
    std::size_t count = 0;
};

class WorkerServer {
public:
    struct Impl;

    // Binds `address`:`port` and serves on its own thread, telling `events` about workers and
    // their messages. `events` must outlive it. Fails (InvalidArgument) when the certificate or
    // key cannot be used, naming the file. `files`: by class, what its workers get after login.
    [[nodiscard]] static Result<std::unique_ptr<WorkerServer>>
    start(WorkerEvents& events,
          const std::string& address,
          std::uint16_t port,
          std::chrono::seconds heartbeat,
          const WorkerPortTls& tls,
          WorkerPortLimits limits = {},
          std::map<std::string, ClassFiles> files = {});
    ~WorkerServer();
    [[nodiscard]] std::uint16_t port() const;
    // No new connections; those open stay.
    void stop_accepting();

private:
    explicit WorkerServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ci::master
