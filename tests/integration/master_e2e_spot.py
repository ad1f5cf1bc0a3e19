#!/usr/bin/env python3
"""Spot interruptions are not failures (issue 18): a ci-worker watching a fake instance metadata
service (IMDSv2, tokens required; tests/support/fake_imds.py) is served a spot interruption
notice in the middle of a build. Its build ends `retry` within 2 s (not after the heartbeat
timeout, 3 x 2 s here), its request runs on the other worker and succeeds, the interrupted
worker is listed draining and gets no new build. Before the notice, its session token is
revoked: the worker must take a new one (a 401 is not a notice)."""

import os
import sys
import time

import master_harness as harness

sys.path.insert(0, os.path.join(os.environ["LIBCI_SOURCE_DIR"], "tests", "support"))
import fake_imds  # noqa: E402 - found through LIBCI_SOURCE_DIR


def main(case):
    imds = fake_imds.FakeImds().start()
    try:
        run(case, imds)
    finally:
        imds.stop()


def run(case, imds):
    master = case.start_master(case.write_config(case.standard_config(workers="remote")))
    spot = case.start_worker(master, 0, trust=["--fingerprint", master.fingerprint(),
                                               "--imds", imds.url])
    harness.wait_for("the spot worker to connect", lambda: master.connected(spot.name), 30)
    tip, first = case.slow_build(master)
    case.check(first["worker"] == spot.name, f"the build runs on the spot worker "
               f"({first['worker']})")
    other = case.start_worker(master, 1)
    harness.wait_for("the second worker to connect", lambda: master.connected(other.name), 30)

    # The watcher polls with its token; revoked, the next poll gets 401 and it takes a new one.
    harness.wait_for("the worker to poll the metadata service", lambda: imds.polls >= 2, 30)
    puts = imds.puts
    imds.revoke()
    harness.wait_for("a 401, then a new token", lambda: imds.unauthorized >= 1 and
                     imds.puts > puts, 30)
    case.check(master.running_build(tip)["id"] == first["id"],
               "no notice, no 401 mistaken for one: the build still runs")

    imds.action = {"action": "terminate", "time": "2026-11-30T18:00:00Z"}
    harness.wait_for("the notice to be served", lambda: imds.served_notice_at is not None, 30,
                     interval=0.01)

    def ended():
        build = master.get(f"/api/v1/builds/{first['id']}")
        return build if build["result"] != "running" else None

    ended_build = harness.wait_for("the interrupted build to end", ended, 30, interval=0.05)
    waited = time.monotonic() - imds.served_notice_at
    case.check(ended_build["result"] == "retry",
               f"the interrupted build ended retry ({ended_build['result']})")
    case.check(waited < 2.0, f"within 2 s of the notice ({waited:.2f} s; the heartbeat timeout "
               f"is 6 s)")

    def retried():
        return next((b for b in master.builds() if b["request"] == first["request"] and
                     b["id"] != first["id"]), None)

    second = harness.wait_for("the retried build", retried, 30)
    case.check(second["worker"] == other.name,
               f"its request runs again on the other worker ({second['worker']})")
    workers = {w["name"]: w for w in master.get("/api/v1/workers")["workers"]}
    case.check(workers[spot.name]["state"] == "draining",
               f"the interrupted worker is listed draining ({workers[spot.name]['state']})")
    case.check(spot.process.poll() is None, "the interrupted worker stays connected (its "
               "instance is the one going away)")
    log = spot.log()
    case.check("spot instance-action: terminate at 2026-11-30T18:00:00Z" in log,
               "the worker logs the notice")

    # A new push while the spot worker is interrupted goes to the other worker only.
    newer = case.repo.branch("feature/newer", ["newer.txt"])
    master.push("feature/newer", harness.ZERO, newer)
    open(case.release, "w").close()
    done = harness.wait_for("the retried build to end", lambda: master.finished_build(tip), 60)
    case.check(done["result"] == "success" and done["id"] == second["id"],
               f"the retried build succeeded ({done['id']}: {done['result']})")
    newer_done = harness.wait_for("the new build to end", lambda: master.finished_build(newer), 60)
    case.check(newer_done["worker"] == other.name,
               f"the interrupted worker got no new build ({newer_done['worker']})")
    master_log = open(os.path.join(case.tmp, "master-1.log")).read()
    case.check("is being interrupted" in master_log, "the master logs the interruption")


if __name__ == "__main__":
    harness.run(main)
