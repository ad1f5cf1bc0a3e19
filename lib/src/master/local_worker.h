#pragma once

// A worker inside the master's process (`slaves.<class>` with `local: true`): each build runs
// on a thread of its own and reports through the same messages a remote worker sends.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include <ci/build/runner.h>

#include "master/coordinator.h"
#include "master/link.h"
#include "worker/reported_build.h"

namespace ci::master {

class LocalWorker final : public Link {
public:
    /// `events` must outlive the worker.
    LocalWorker(WorkerEvents& events, std::string name, build::RunnerOptions options)
        : events_(events), name_(std::move(name)), options_(std::move(options)) {}
    ~LocalWorker() override { close(); }

    /// StartBuild starts a build thread; StopBuild asks it to stop.
    void send(const protocol::Message& message) override;
    /// Stops every build and waits for them (their ends are reported first).
    void close() override;

private:
    struct Job {
        std::jthread thread;
        std::shared_ptr<std::atomic<bool>> done;
    };
    void run(const build::BuildSpec& spec, std::stop_token stop);

    WorkerEvents& events_;
    std::string name_;
    build::RunnerOptions options_;
    worker::MasterAnswers answers_; // before jobs_: their threads wait on it
    std::mutex mutex_;
    std::map<std::int64_t, Job> jobs_;
};

} // namespace ci::master
