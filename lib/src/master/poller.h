#pragma once

// The ref poller, for masters that receive no webhooks (staging): every `poll_interval`, each
// repository that has one is listed (branches and tags, through libgit2 with the master's git
// credentials), the moves since the last reading become events for the ingestor, and the
// reading becomes the new baseline, kept in the store. At start the baseline is read back, so
// that pushes made while the master was down build; a repository never polled before (or whose
// URL changed) takes its first reading as its baseline, as a webhook-less master cannot know
// what it missed.
//
// Order: a poll's events are acknowledged by the ingestor (on disk) before its reading is saved
// as the baseline. A crash between the two repeats those events at the next start; none is
// lost.
//
// Failures (an unreachable remote, a store that fails) are logged once per streak of failures,
// and again when the repository is polled successfully; meanwhile polls back off (twice the
// interval, doubling, up to 5 minutes or the interval when it is longer).

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/git/remote.h>
#include <ci/store/store.h>

#include "store/ingest.h"

namespace ci::master {

// Credentials for git remotes (MasterOptions::git_token and ssh_key).
struct GitCredentials {
    std::string token;   // HTTPS token (a secret); empty: none
    std::string ssh_key; // private key file for SSH; empty: the SSH agent
};

// When to poll a repository again: `interval` after a poll that succeeded (failures == 0);
// after `failures` failed polls in a row, the interval doubled once per failure, up to 5 minutes
// (or up to the interval, when that is longer).
[[nodiscard]] std::chrono::milliseconds poll_delay(std::chrono::milliseconds interval,
                                                   int failures);

class Poller {
public:
    // `store`, `ingestor` and `clock` must outlive the Poller. A stop requested on `stop` stops
    // it as stop() does (without joining its thread). Nothing runs before start().
    Poller(const config::Config& config,
           store::Store& store,
           store::Ingestor& ingestor,
           const Clock& clock,
           GitCredentials credentials,
           std::stop_token stop = {});
    // Stops and joins the thread.
    ~Poller();
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // Starts the polling thread when some repository has a poll_interval; each is polled at once,
    // then every interval. Call once.
    void start();
    // Ends a listing in progress and the thread, and waits for it. Idempotent.
    void stop();
    // Called after each write of a baseline with how it went (the master's health counts it).
    // Set before start().
    void on_store_write(std::function<void(const Status&)> report) {
        report_store_write_ = std::move(report);
    }

    // Polls `repository` now on the calling thread: reads the baseline (once), lists the remote,
    // submits the events and waits until they are on disk, then saves the reading. Fails with the
    // listing's error (Git, Timeout, Cancelled), the ingestor's, or the store's. For the thread,
    // and for tests that poll without it (never both at once). `repository` must be one of the
    // config's repositories with a poll_interval (InvalidArgument otherwise).
    [[nodiscard]] Status poll(const std::string& repository);

private:
    struct Polled {
        std::string url;
        std::chrono::milliseconds interval{};
        std::chrono::steady_clock::time_point due;
        bool loaded = false;                 // the stored baseline was read
        std::optional<git::RefMap> baseline; // nullopt: never polled
        bool unsaved = false;                // baseline newer than the stored one
        int failures = 0;                    // polls failed in a row
    };
    // Forwards a stop requested on the caller's token to the poller's own.
    struct RequestStop {
        std::stop_source* source;
        void operator()() const { source->request_stop(); }
    };

    void run();
    // After a poll: counts and logs its failure (or the end of a streak), and sets when it is due.
    static void schedule_next(const std::string& name, Polled& polled, const Status& status);
    Status load_baseline(const std::string& name, Polled& polled);
    Status submit_and_wait(std::vector<sched::Event> events);

    store::Store& store_;
    store::Ingestor& ingestor_;
    const Clock& clock_;
    GitCredentials credentials_;
    std::function<void(const Status&)> report_store_write_;
    std::map<std::string, Polled> repositories_;
    std::stop_source stop_source_;
    std::stop_callback<RequestStop> forward_stop_;
    std::mutex mutex_; // for the thread's waits (its state is its own)
    std::condition_variable_any wake_;
    std::thread thread_;
};

} // namespace ci::master
