#!/usr/bin/env python3
"""The master killed with -9 while a build runs and two requests wait behind a lock: after a
restart the requests are still there, the interrupted build has ended "retry", and all three
run to success."""

import signal

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    old_worker = case.start_workers(master, 1)[0]
    slow_tip, interrupted = case.slow_build(master)
    waiting_tips = [case.repo.branch(f"feature/queued-{i}", [f"q{i}.txt"]) for i in range(2)]
    for i, tip in enumerate(waiting_tips):
        master.push(f"feature/queued-{i}", harness.ZERO, tip, "queued")
    # The lock holds them back: both wait as pending requests.
    def two_pending():
        pending = master.requests()
        return pending if len(pending) == 2 else None

    queued = harness.wait_for("two pending requests", two_pending, 30)
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    open(case.release, "w").close()
    old_worker.kill(signal.SIGTERM)  # it cannot follow the master to its new ports

    master.start()
    pending = master.requests()
    case.check(sorted(r["id"] for r in pending) ==
               sorted([interrupted["request"], *(r["id"] for r in queued)]),
               f"after the restart the two waiting requests and the interrupted one are pending "
               f"({[(r['id'], r['branch']) for r in pending]})")
    lost = master.get(f"/api/v1/builds/{interrupted['id']}")
    case.check(lost["result"] == "retry", f"the build the master lost ended retry "
               f"({lost['result']})")
    case.start_worker(master, 1)
    for tip in waiting_tips + [slow_tip]:
        build = harness.wait_for("the requests after the restart",
                                 lambda tip=tip: master.finished_build(tip), 90)
        case.check(build["result"] == "success",
                   f"{build['branch']}, requested before the kill, built: {build['result']}")


if __name__ == "__main__":
    harness.run(main)
