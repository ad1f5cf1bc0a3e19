#!/usr/bin/env python3
"""Restart-safe periodic timers. The scheduler keeps a periodic scheduler's next run (an absolute
time) across a restart, and collapses the runs missed while the master was down into one:
1. killed with -9 between two runs and started again before the next one, the master runs it
   at its stored time, not one interval after the restart;
2. killed with -9 and down across two runs, it runs once at the restart, and the run after
   that comes one interval later.
No event reaches the master after its first one."""

import signal
import time

import master_harness as harness

INTERVAL = 6  # seconds
GAP = 4  # seconds between a run and the restart in part 1: a timer restarted from zero is late
LATE = 2  # seconds a run may come after its time (the API's times are whole seconds)


def main(case):
    config = case.write_config(case.standard_config(workers="local", extra_schedulers=f"""
  periodic: {{type: periodic, repository: demo, builders: [tests], interval: {INTERVAL}s}}
"""))
    master = case.start_master(config)
    # A fresh master arms no periodic run before its first event (master-e2e-periodic-first-run
    # shows it): a push of a branch that no scheduler builds is that event.
    master.push("other", harness.ZERO, harness.git("rev-parse", "HEAD", cwd=case.repo.work))

    def periodic_requests():
        return [r for r in master.all_requests() if r["scheduler"] == "periodic"]

    def next_run(seen, timeout):
        def found():
            runs = periodic_requests()
            return runs[seen] if len(runs) > seen else None
        return harness.wait_for(f"periodic run {seen + 1}", found, timeout)

    def built(request):
        build = harness.wait_for(f"the build of request {request['id']}", lambda: next(
            (b for b in master.builds() if b["request"] == request["id"] and
             b["result"] not in ("running", "retry")), None), 60)
        case.check(build["result"] == "success" and build["branch"] == "master",
                   f"periodic request {request['id']} built master: {build['result']}")

    def kill(last):
        # After the run's build: a master killed during a repository's first checkout can
        # leave its mirror unusable, which is not what this case is about.
        built(last)
        code = master.kill(signal.SIGKILL)
        case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")

    first = next_run(0, INTERVAL + 30)
    s1 = harness.api_time(first["submitted"])
    kill(first)
    # Part 1: down between two runs, restarted before the next.
    time.sleep(max(0.0, s1 + GAP - time.time()))
    restarted = time.time()
    master.start()
    if time.time() > s1 + INTERVAL - 0.5:
        raise AssertionError(f"the restart ended {time.time() - s1:.1f} s after the run at "
                             f"{first['submitted']}: too slow to restart between two runs")
    try:
        second = next_run(1, INTERVAL + 30)
    except AssertionError:
        case.check(False, f"after a restart between two runs, no periodic run came in "
                   f"{INTERVAL + 30} s (the last was at {first['submitted']})")
        return
    s2 = harness.api_time(second["submitted"])
    case.check(s1 + INTERVAL - 1 <= s2 <= s1 + INTERVAL + LATE,
               f"restarted {restarted - s1:.1f} s after the run at {first['submitted']}, the "
               f"next ran at {second['submitted']}, one interval after it (from zero it would "
               f"run {INTERVAL} s after the restart, at "
               f"{time.strftime('%H:%M:%S', time.gmtime(restarted + INTERVAL))} or later)")

    # Part 2: down across two runs.
    kill(second)
    time.sleep(max(0.0, s2 + 2 * INTERVAL + 1 - time.time()))
    restarted = time.time()
    master.start()
    ready = time.time()
    third = next_run(2, INTERVAL + 30)
    s3 = harness.api_time(third["submitted"])
    case.check(int(restarted) <= s3 <= ready + LATE,
               f"down from {second['submitted']} past two runs, restarted at "
               f"{time.strftime('%H:%M:%S', time.gmtime(restarted))}: it ran at once "
               f"({third['submitted']})")
    fourth = next_run(3, INTERVAL + 30)
    s4 = harness.api_time(fourth["submitted"])
    case.check(s3 + INTERVAL - 1 <= s4 <= s3 + INTERVAL + LATE,
               f"the runs missed while down collapsed into that one: the next ran one interval "
               f"later ({fourth['submitted']})")
    built(third)
    built(fourth)


if __name__ == "__main__":
    harness.run(main)
