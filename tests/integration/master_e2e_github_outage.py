#!/usr/bin/env python3
"""Commit statuses through a GitHub that is down, then rate limited, then back: they arrive in
order, once each. Then statuses queued while GitHub is down and the master killed with -9:
after the restart they arrive, once each, and nothing sent before the kill is sent again."""

import signal
import time

import master_harness as harness

DOWN_SECONDS = 8
PENDING, STARTED = ("pending", False), ("pending", True)


def finished(master, tip):
    return harness.wait_for(f"the builds of {tip[:12]}", lambda: len(
        [b for b in master.builds() if b["branch_tip"] == tip and
         b["result"] not in ("running", "retry")]) == 3, 60)


def main(case):
    fake = case.start_fake_github()
    master = case.start_master(case.write_config(case.github_config()))

    # Down for a while, then a rate limit, then back.
    fake.mode = "down"
    down_since = time.monotonic()
    first = case.repo.branch("feature/first", ["first.txt"])
    master.push("feature/first", harness.ZERO, first)
    finished(master, first)
    harness.wait_for("retries while GitHub is down", lambda: fake.attempts >= 2, 30)
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
    case.check(fake.accepted() == [], f"nothing accepted while down ({fake.attempts} attempts)")
    fake.mode = "ratelimit"
    time.sleep(2)
    fake.mode = "up"
    harness.wait_for("the statuses after the outage",
                     lambda: len(fake.accepted(first, "libci/tests")) >= 3, 90)
    time.sleep(1.5)  # anything sent twice would come now
    case.check(fake.accepted(first, "libci/tests") == [PENDING, STARTED, ("success", True)],
               f"after {DOWN_SECONDS} s down and a rate limit, the statuses arrive in order, once "
               f"each ({fake.accepted(first, 'libci/tests')})")
    log = open(f"{case.tmp}/master-1.log").read()
    case.check("github: the status libci/demo" in log and "retrying in" in log,
               "the outage is logged")

    # Down again, statuses queued, the master killed: they arrive after the restart, once.
    fake.mode = "down"
    second = case.repo.branch("feature/second", ["second.txt"])
    master.push("feature/second", harness.ZERO, second)
    finished(master, second)
    before = fake.attempts
    harness.wait_for("a retry of the queued statuses", lambda: fake.attempts > before, 30)
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    fake.mode = "up"
    master.start()
    harness.wait_for("the queued statuses after the restart",
                     lambda: len(fake.accepted(second, "libci/tests")) >= 3, 60)
    time.sleep(2)
    case.check(fake.accepted(second, "libci/tests") == [PENDING, STARTED, ("success", True)],
               f"statuses queued at the kill arrive after the restart, in order, once each "
               f"({fake.accepted(second, 'libci/tests')})")
    case.check(fake.accepted(first, "libci/tests") == [PENDING, STARTED, ("success", True)],
               "statuses sent before the kill are not sent again")
    case.check(all(code in (503, 403) for code, _ in fake.refused),
               f"only the outage and the rate limit refused anything "
               f"({sorted({c for c, _ in fake.refused})})")


if __name__ == "__main__":
    harness.run(main)
