#pragma once

// Where the master sends a worker's messages: a TCP connection (worker_server.cpp) or an
// in-process worker (local_worker.cpp).

#include "master/protocol.h"

namespace ci::master {

class Link {
public:
    virtual ~Link() = default;
    /// Queues a message for the worker; never blocks on the network. Dropped once closed.
    virtual void send(const protocol::Message& message) = 0;
    /// Closes the connection (a local worker: stops its builds and waits for them).
    virtual void close() = 0;
};

} // namespace ci::master
