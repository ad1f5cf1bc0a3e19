#pragma once

// The worker protocol's TCP side: accepts connections on the worker port, authenticates them
// (challenge, HMAC proof), and hands each authenticated worker's messages to the master.
// One I/O thread serves every connection; 1,000 idle workers cost a socket and a buffer each.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <ci/core/error.h>

namespace ci::master {

class WorkerEvents;

class WorkerServer {
public:
    struct Impl;
    // Binds `address`:`port` and serves on its own thread, telling `events` about workers and
    // their messages. `events` must outlive it.
    [[nodiscard]] static Result<std::unique_ptr<WorkerServer>>
    start(WorkerEvents& events,
          const std::string& address,
          std::uint16_t port,
          std::chrono::seconds heartbeat);
    ~WorkerServer();
    [[nodiscard]] std::uint16_t port() const;
    // No new connections; those open stay.
    void stop_accepting();

private:
    explicit WorkerServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ci::master
