#pragma once

// What the master does with a report, for the reporters' own tests: the messages the reporter's
// outbox() gives are stored (as the event's transaction would; queued at `now`), then report()
// is called.

#include <doctest/doctest.h>

#include <ci/core/clock.h>
#include <ci/report/reporter.h>
#include <ci/store/store.h>

namespace ci::test {

inline void deliver(report::Reporter& reporter,
                    store::Store& store,
                    const report::BuildReport& report,
                    WallTime now) {
    auto messages = reporter.outbox(report);
    for (auto& message : messages) {
        message.queued = now;
    }
    const auto stored = store.change_reports(messages, {}, now);
    REQUIRE(stored.has_value());
    reporter.report(report);
}

} // namespace ci::test
