#include "master/poller.h"

#include <algorithm>
#include <future>

#include <fmt/format.h>

#include <ci/core/log.h>
#include <ci/sched/scheduler.h>

namespace ci::master {

namespace {

// A listing that takes longer than this is abandoned (and retried with backoff).
constexpr std::chrono::milliseconds listing_timeout = std::chrono::seconds(60);
// Backoff after failures stops growing here (or at the interval, when that is longer).
constexpr std::chrono::milliseconds max_backoff = std::chrono::minutes(5);

} // namespace

std::chrono::milliseconds poll_delay(std::chrono::milliseconds interval, int failures) {
    const auto cap = std::max(interval, max_backoff);
    auto delay = interval;
    for (int i = 0; i < failures && delay < cap; ++i) {
        delay *= 2;
    }
    return std::min(delay, cap);
}

Poller::Poller(const config::Config& config,
               store::Store& store,
               store::Ingestor& ingestor,
               const Clock& clock,
               GitCredentials credentials,
               std::stop_token stop)
    : store_(store), ingestor_(ingestor), clock_(clock), credentials_(std::move(credentials)),
      forward_stop_(std::move(stop), RequestStop{&stop_source_}) {
    for (const auto& [name, repository] : config.repositories) {
        if (repository.poll_interval) {
            Polled polled;
            polled.url = repository.url;
            polled.interval =
                std::chrono::duration_cast<std::chrono::milliseconds>(*repository.poll_interval);
            repositories_.emplace(name, std::move(polled));
        }
    }
}

Poller::~Poller() {
    stop();
}

void Poller::start() {
    if (repositories_.empty() || thread_.joinable()) {
        return;
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto& [name, polled] : repositories_) {
        polled.due = now;
    }
    thread_ = std::thread([this] { run(); });
}

void Poller::stop() {
    stop_source_.request_stop(); // also ends a listing in progress and the thread's wait
    if (thread_.joinable()) {
        thread_.join();
    }
}

void Poller::run() {
    const auto stop = stop_source_.get_token();
    while (!stop.stop_requested()) {
        auto next = std::chrono::steady_clock::time_point::max();
        for (const auto& [name, polled] : repositories_) {
            next = std::min(next, polled.due);
        }
        {
            std::unique_lock lock(mutex_);
            (void)wake_.wait_until(lock, stop, next, [] { return false; });
        }
        for (auto& [name, polled] : repositories_) {
            if (stop.stop_requested()) {
                return;
            }
            if (polled.due > std::chrono::steady_clock::now()) {
                continue;
            }
            auto status = poll(name);
            if (!status && status.error().code == ErrorCode::Cancelled) {
                return;
            }
            schedule_next(name, polled, status);
        }
    }
}

void Poller::schedule_next(const std::string& name, Polled& polled, const Status& status) {
    if (status && polled.failures > 0) {
        log::info("poll {}: works again after {} failed poll(s)", name, polled.failures);
        polled.failures = 0;
    } else if (!status) {
        ++polled.failures;
    }
    const auto delay = poll_delay(polled.interval, polled.failures);
    // Once per streak: a remote that is down for a day logs one warning, not thousands.
    if (!status && polled.failures == 1) {
        log::warn("poll {}: {} (retrying with backoff; logged again when it works)",
                  name,
                  status.error().message);
    } else if (!status) {
        log::debug("poll {}: failed again ({} in a row; next try in {} ms): {}",
                   name,
                   polled.failures,
                   delay.count(),
                   status.error().message);
    }
    polled.due = std::chrono::steady_clock::now() + delay;
}

Status Poller::load_baseline(const std::string& name, Polled& polled) {
    auto stored = store_.polled_refs(name);
    if (!stored) {
        return fail(stored.error());
    }
    if (*stored && (*stored)->url != polled.url) {
        // Another remote: its refs say nothing about this one's.
        log::info("poll {}: the URL changed since the last reading; the first reading of {} is "
                  "the new baseline",
                  name,
                  log::redact(polled.url));
    } else if (*stored) {
        polled.baseline = std::move((*stored)->refs);
    }
    polled.loaded = true;
    return {};
}

Status Poller::submit_and_wait(std::vector<sched::Event> events) {
    std::vector<std::future<Result<store::Receipt>>> receipts;
    receipts.reserve(events.size());
    for (auto& event : events) {
        receipts.push_back(ingestor_.submit(std::move(event)));
    }
    Status status;
    for (auto& receipt : receipts) {
        auto written = receipt.get();
        if (!written && status) {
            status = fail(written.error());
        }
    }
    return status;
}

Status Poller::poll(const std::string& repository) {
    const auto found = repositories_.find(repository);
    if (found == repositories_.end()) {
        return fail(ErrorCode::InvalidArgument,
                    fmt::format("poll {}: not a repository with a poll_interval", repository));
    }
    auto& polled = found->second;
    if (!polled.loaded) {
        if (auto status = load_baseline(repository, polled); !status) {
            return status;
        }
    }
    git::RemoteOptions options;
    options.token = credentials_.token;
    options.ssh_key = credentials_.ssh_key;
    options.timeout = listing_timeout;
    options.stop = stop_source_.get_token();
    auto refs = git::list_remote_refs(polled.url, options);
    if (!refs) {
        return fail(refs.error());
    }
    const auto now = clock_.now();
    if (polled.baseline) {
        // Vanished refs become RefDeleted events: they end waits, they never build.
        auto events = sched::poll_events(repository, *polled.baseline, *refs, now);
        if (events.empty() && !polled.unsaved) {
            return {};
        }
        // The events must be on disk before the reading replaces the baseline: a crash (or a
        // failed write) in between repeats them, never loses them.
        if (auto status = submit_and_wait(std::move(events)); !status) {
            return status;
        }
    }
    // The events are acknowledged: the reading is the baseline from now on, even if it cannot be
    // stored (then it is stored with a later poll; a crash meanwhile repeats the events).
    polled.baseline = std::move(*refs);
    polled.unsaved = true;
    auto saved =
        store_.save_polled_refs(repository, store::PolledRefs{polled.url, *polled.baseline, now});
    if (report_store_write_) {
        report_store_write_(saved);
    }
    if (!saved) {
        return saved;
    }
    polled.unsaved = false;
    return {};
}

} // namespace ci::master
