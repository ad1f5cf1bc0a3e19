#pragma once

/// \file
/// The durable front of the scheduler: events go in from any thread, and each is acknowledged
/// only once the changes it carried and the scheduler's actions for it are committed to disk.
///
/// A writer takes whatever events are queued (up to `max_batch`), reserves their change ids,
/// feeds them to the scheduler, and writes everything in one transaction (group commit): a burst
/// of webhooks costs one fsync, not one each. The writer is the Ingestor's own thread for
/// submit(), or the caller's thread for enqueue() + flush() while commits are fast: a server
/// that handles a round of ready requests, enqueueing each, then flushes once, gets the same
/// group commit without a hand-off to another thread and back. The writer thread also wakes at
/// the scheduler's next deadline to end tree-stable waits.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <vector>

#include <ci/config/config.h>
#include <ci/core/clock.h>
#include <ci/core/error.h>
#include <ci/sched/scheduler.h>
#include <ci/store/store.h>

namespace ci::store {

/// What an acknowledged event produced.
struct Receipt {
    std::vector<std::int64_t> change_ids;  ///< the event's changes, in order
    std::vector<std::int64_t> request_ids; ///< requests its step queued (possibly for other
                                           ///< events' waits that ended at the same time)
};

struct IngestOptions {
    std::size_t max_batch = 4096; ///< events per transaction at most
    /// Called on the writer thread after each commit that queued build requests (from events
    /// or from waits that ended), with those requests as stored (ids assigned, Pending): the
    /// master wakes its dispatcher and tells its reporters here. Must not block.
    std::function<void(const std::vector<BuildRequest>&)> on_requests;
    /// The reporters' outbox messages for each build request a commit queues, stored in that
    /// commit (Store::write): a request is never on disk without them. May be empty.
    RequestReports reports;
    /// Called on the writer's thread after each commit with how it went: the master keeps its
    /// health from it (a failing disk makes it degraded until a commit succeeds again). Must
    /// not block.
    std::function<void(const Status&)> on_commit;
    /// After a failed commit, the writer thread waits this long before it tries the waits that
    /// are due again (doubling up to max_retry): a full disk costs a log line per retry, not a
    /// hot loop. Events submitted meanwhile are still tried (and refused) at once.
    std::chrono::milliseconds first_retry{200};
    std::chrono::milliseconds max_retry{5000};
};

class Ingestor {
public:
    /// Restores the scheduler built from `config` from `store`, then starts the writer thread.
    /// `store` and `clock` must outlive the Ingestor.
    [[nodiscard]] static Result<std::unique_ptr<Ingestor>> start(const config::Config& config,
                                                                 Store& store,
                                                                 const Clock& clock,
                                                                 IngestOptions options = {});

    /// Stops after writing what is queued.
    ~Ingestor();
    Ingestor(const Ingestor&) = delete;
    Ingestor& operator=(const Ingestor&) = delete;

    /// Queues an event. The future is ready when the event is on disk, or failed: an invalid
    /// force request (InvalidArgument; nothing of it written) or a store failure (Store).
    [[nodiscard]] std::future<Result<Receipt>> submit(sched::Event event);
    /// Queues an event; `done` is called on the writer thread once it is on disk or failed (as
    /// for the future above). `delivery` (a webhook's X-GitHub-Delivery; empty: none) is stored
    /// in the same transaction. `done` must not block: it holds up the next batch.
    void
    submit(sched::Event event, std::string delivery, std::function<void(Result<Receipt>)> done);

    /// Queues an event as submit() does, without waking the writer thread: the caller writes it
    /// with flush(), and `done` is called there. Returns true when the caller owes a flush()
    /// (this is the first event queued since the last one), false when a flush() is already
    /// owed: e.g. an HTTP server queues the webhooks of one round of ready requests and flushes
    /// once after the round. An event left unflushed is written with the writer thread's next
    /// write (a submit(), a deadline, or the destructor). `done` must not block and must not
    /// call flush() (it runs while the writer's role is held).
    [[nodiscard]] bool
    enqueue(sched::Event event, std::string delivery, std::function<void(Result<Receipt>)> done);
    /// Writes everything queued, in transactions of up to `max_batch` events: on the calling
    /// thread (their `done` callbacks run here; waits while another writer is writing) while
    /// commits are fast, and by waking the writer thread once they take 100 us or more on
    /// average (a disk that syncs slowly): the caller then goes on, e.g. reading the next
    /// requests, which the writer takes as its next batch when the disk is done (pipelining).
    void flush();

private:
    struct Impl;
    explicit Ingestor(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace ci::store
