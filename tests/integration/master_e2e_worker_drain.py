#!/usr/bin/env python3
"""A ci-worker asked to stop (SIGTERM) in the middle of a build, over TLS: it tells the master it
is draining (the master lists it so and gives it no new build), finishes the running build,
which succeeds with its whole log, and exits 0 once the build's end has reached the master."""

import signal

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config(workers="remote")))
    worker = case.start_workers(master, 1)[0]
    tip, build = case.slow_build(master)
    worker.send_signal(signal.SIGTERM)

    def state():
        found = [w for w in master.get("/api/v1/workers")["workers"] if w["name"] == worker.name]
        return found[0]["state"] if found else None

    harness.wait_for("the worker listed as draining", lambda: state() == "draining", 30)
    case.check(worker.process.poll() is None, "the worker waits for its build")
    other = case.repo.branch("feature/other", ["other.txt"])
    master.push("feature/other", harness.ZERO, other)
    open(case.release, "w").close()
    status = worker.process.wait(timeout=60)
    case.check(status == 0, f"the worker exits 0 once its build ended ({status})")
    done = harness.wait_for("the slow build to end", lambda: master.finished_build(tip))
    case.check(done["id"] == build["id"] and done["result"] == "success",
               f"the running build finished on the draining worker ({done['result']})")
    log = master.step_log(build["id"])
    case.check("all tests passed" in log, "with its whole log")
    case.check("drained: every build has ended" in worker.log(), "the worker says it drained")
    case.check(master.finished_build(other) is None and master.running_build(other) is None,
               "the draining worker got no new build")


if __name__ == "__main__":
    harness.run(main)
