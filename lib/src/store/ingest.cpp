#include "store/ingest.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include <ci/core/log.h>

namespace ci::store {

namespace {

struct Pending {
    sched::Event event;
    std::string delivery;
    std::function<void(Result<Receipt>)> done;
};

} // namespace

struct Ingestor::Impl {
    config::Config config;
    Store& store;
    const Clock& clock;
    IngestOptions options;

    // The writer's role: whoever holds it (the writer thread, or a thread in flush()) owns the
    // scheduler and writes to the store.
    std::mutex writing;
    std::optional<sched::Scheduler> scheduler;

    // The queue and the writer thread's wake-ups.
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Pending> queue;
    bool writer_wanted = false; ///< submit() queued something for the writer thread
    bool flush_owed = false;    ///< enqueue() told its caller to flush(); not done yet
    bool stopping = false;
    /// The scheduler's next deadline, as the last writer left it; the writer thread sleeps
    /// until then (none: until woken).
    std::optional<WallTime> deadline;
    /// After a failed commit: no tick before this (steady clock), and the next backoff.
    std::optional<std::chrono::steady_clock::time_point> retry_at;
    std::chrono::milliseconds backoff{0};
    std::thread writer;

    /// Commits of small batches take this long, on average (nanoseconds; an exponentially
    /// weighted mean).
    std::atomic<std::int64_t> commit_ns{0};
    /// At least this, and flush() leaves the writing to the writer thread.
    static constexpr std::int64_t slow_commit_ns = 100'000;

    Impl(config::Config c, Store& s, const Clock& k, IngestOptions o)
        : config(std::move(c)), store(s), clock(k), options(std::move(o)) {}

    // The scheduler as the store says it is: at start, and after a failed write (whose actions
    // the scheduler had already taken into its memory). Called with `writing` held (or before
    // the writer thread starts).
    Status reload() {
        auto fresh = sched::Scheduler::create(config);
        if (!fresh) {
            return fail(fresh.error());
        }
        auto state = store.scheduler_state();
        if (!state) {
            return fail(state.error());
        }
        fresh->restore(*state, clock.now());
        scheduler.emplace(std::move(*fresh));
        return {};
    }

    void run() {
        for (;;) {
            {
                std::unique_lock lock(mutex);
                for (;;) {
                    if (stopping && queue.empty()) {
                        return;
                    }
                    const bool backing_off =
                        retry_at && std::chrono::steady_clock::now() < *retry_at;
                    if (stopping || writer_wanted ||
                        (!backing_off && deadline && clock.now() >= *deadline)) {
                        break;
                    }
                    // Woken early when a write moved the deadline earlier: wait again for the
                    // new one. The scheduler's deadlines are wall-clock times; wait for them on
                    // the steady clock so a clock step cannot stall a wait.
                    if (backing_off) {
                        wake.wait_until(lock, *retry_at);
                    } else if (deadline) {
                        wake.wait_for(
                            lock, std::max<std::chrono::nanoseconds>(*deadline - clock.now(), {}));
                    } else {
                        wake.wait(lock);
                    }
                }
                writer_wanted = false;
            }
            // Woken by a submit, a due deadline, or stopping with events still queued.
            write_queued(true);
        }
    }

    // Takes the writer's role, then writes what is queued (up to max_batch per transaction,
    // until the queue is empty). With `tick` and nothing queued, ends the waits that are due.
    void write_queued(bool tick) {
        const std::lock_guard role(writing);
        for (;;) {
            std::vector<Pending> taken;
            {
                const std::lock_guard lock(mutex);
                while (!queue.empty() && taken.size() < options.max_batch) {
                    taken.push_back(std::move(queue.front()));
                    queue.pop_front();
                }
                if (queue.empty()) {
                    flush_owed = false;
                }
            }
            if (taken.empty() && !tick) {
                break;
            }
            process(taken); // with nothing taken: the tick
            tick = false;
            if (taken.empty()) {
                break;
            }
        }
        const auto next = scheduler->next_deadline();
        bool earlier = false;
        {
            const std::lock_guard lock(mutex);
            earlier = next && (!deadline || *next < *deadline);
            deadline = next;
        }
        if (earlier) {
            wake.notify_one(); // the writer thread sleeps until a later deadline, or forever
        }
    }

    void process(std::vector<Pending>& taken) {
        const auto now = clock.now();
        std::size_t change_count = 0;
        for (const auto& item : taken) {
            if (const auto* push = std::get_if<sched::Push>(&item.event)) {
                change_count += push->changes.size();
            }
        }
        std::vector<std::int64_t> ids;
        if (change_count > 0) {
            auto reserved = store.reserve_change_ids(change_count);
            if (!reserved) {
                note_commit(fail(reserved.error()));
                fail_all(taken, reserved.error());
                return;
            }
            ids = std::move(*reserved);
        }
        std::vector<Batch> batches;
        std::vector<std::optional<Error>> refused(taken.size());
        std::vector<Receipt> receipts(taken.size());
        std::size_t next_id = 0;
        for (std::size_t i = 0; i < taken.size(); ++i) {
            Batch batch;
            if (auto* push = std::get_if<sched::Push>(&taken[i].event)) {
                for (auto& change : push->changes) {
                    change.id = ids[next_id++];
                    receipts[i].change_ids.push_back(change.id);
                }
                batch.changes = push->changes;
            }
            if (!taken[i].delivery.empty()) {
                batch.deliveries.push_back(taken[i].delivery);
            }
            auto actions = scheduler->handle(taken[i].event, now);
            if (!actions) {
                refused[i] = actions.error();
                continue;
            }
            batch.actions = std::move(*actions);
            batches.push_back(std::move(batch));
        }
        if (taken.empty()) {
            // Woken by a deadline: let the scheduler end the waits that are due.
            auto actions = scheduler->handle(sched::Tick{}, now);
            if (actions && !actions->empty()) {
                batches.push_back(Batch{{}, std::move(*actions), {}});
            }
        }
        if (batches.empty() && taken.empty()) {
            return;
        }
        auto written = store.write(batches, now, options.reports);
        note_commit(written ? Status{} : Status(fail(written.error())));
        if (written && taken.size() <= 2) {
            // Small batches only: their commit time is the disk's sync time, where a large
            // batch's also counts writing its pages (CPU work, not waiting).
            const auto last =
                std::chrono::duration_cast<std::chrono::nanoseconds>(written->commit_time).count();
            commit_ns = commit_ns + (last - commit_ns) / 8;
        }
        if (!written) {
            log::error("ingest: {}", written.error().message);
            fail_all(taken, written.error());
            if (auto status = reload(); !status) {
                log::error("ingest: reloading the scheduler: {}", status.error().message);
            }
            return;
        }
        for (std::size_t i = 0; i < taken.size(); ++i) {
            if (refused[i]) {
                taken[i].done(fail(*refused[i]));
                continue;
            }
            receipts[i].request_ids = written->request_ids;
            taken[i].done(std::move(receipts[i]));
        }
        if (!written->request_ids.empty() && options.on_requests) {
            // write() assigned the ids in the order of the RequestBuild actions.
            std::vector<BuildRequest> queued;
            for (const auto& batch : batches) {
                for (const auto& action : batch.actions) {
                    if (const auto* request = std::get_if<sched::RequestBuild>(&action);
                        request != nullptr && queued.size() < written->request_ids.size()) {
                        queued.push_back(BuildRequest{written->request_ids[queued.size()],
                                                      *request,
                                                      RequestState::Pending,
                                                      now,
                                                      {},
                                                      {}});
                    }
                }
            }
            options.on_requests(queued);
        }
    }

    // Reports a commit, and backs off the writer thread's ticks after a failure.
    void note_commit(const Status& status) {
        {
            const std::lock_guard lock(mutex);
            if (status) {
                retry_at.reset();
                backoff = {};
            } else {
                backoff = backoff.count() == 0 ? options.first_retry
                                               : std::min(backoff * 2, options.max_retry);
                retry_at = std::chrono::steady_clock::now() + backoff;
            }
        }
        if (options.on_commit) {
            options.on_commit(status);
        }
    }

    static void fail_all(std::vector<Pending>& taken, const Error& error) {
        for (auto& item : taken) {
            item.done(fail(error));
        }
    }
};

Ingestor::Ingestor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Ingestor>> Ingestor::start(const config::Config& config,
                                                  Store& store,
                                                  const Clock& clock,
                                                  IngestOptions options) {
    auto impl = std::make_unique<Impl>(config, store, clock, std::move(options));
    if (auto status = impl->reload(); !status) {
        return fail(status.error());
    }
    // Waits restored from the store end at their deadlines with no other event: a master
    // restarted inside a tree-stable window builds the pushes it acknowledged before.
    impl->deadline = impl->scheduler->next_deadline();
    Impl* raw = impl.get();
    raw->writer = std::thread([raw] { raw->run(); });
    return std::unique_ptr<Ingestor>(new Ingestor(std::move(impl)));
}

Ingestor::~Ingestor() {
    {
        const std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->writer.join();
}

std::future<Result<Receipt>> Ingestor::submit(sched::Event event) {
    auto promise = std::make_shared<std::promise<Result<Receipt>>>();
    auto future = promise->get_future();
    submit(std::move(event), {}, [promise](Result<Receipt> receipt) {
        promise->set_value(std::move(receipt));
    });
    return future;
}

void Ingestor::submit(sched::Event event,
                      std::string delivery,
                      std::function<void(Result<Receipt>)> done) {
    {
        const std::lock_guard lock(impl_->mutex);
        impl_->queue.push_back(Pending{std::move(event), std::move(delivery), std::move(done)});
        impl_->writer_wanted = true;
    }
    impl_->wake.notify_one();
}

bool Ingestor::enqueue(sched::Event event,
                       std::string delivery,
                       std::function<void(Result<Receipt>)> done) {
    const std::lock_guard lock(impl_->mutex);
    impl_->queue.push_back(Pending{std::move(event), std::move(delivery), std::move(done)});
    return !std::exchange(impl_->flush_owed, true);
}

void Ingestor::flush() {
    if (impl_->commit_ns >= Impl::slow_commit_ns) {
        // Commits wait for a slow disk: the writer thread waits for it, and the caller goes on
        // (reading the next requests, which the writer then takes as its next batch).
        {
            const std::lock_guard lock(impl_->mutex);
            if (impl_->queue.empty()) {
                return;
            }
            impl_->writer_wanted = true;
        }
        impl_->wake.notify_one();
        return;
    }
    impl_->write_queued(false);
}

} // namespace ci::store
