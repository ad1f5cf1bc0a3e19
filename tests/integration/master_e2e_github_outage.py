#!/usr/bin/env python3
"""Commit statuses through a GitHub that is down for a minute, then rate limited, then back:
they arrive in order, once each (issue 19). The master is killed with -9 in the middle of the
outage, with statuses of two pushes queued: the restarted one sends them, once each, and nothing
else.

Wall time: about 75 s, nearly all of it waiting (the outage itself, then the reporter's next try:
its backoff doubles from 1 s, so after a minute down it tries again within about half a minute).
The case has a meson priority so that it starts first and the other cases run beside it."""

import signal
import time

import master_harness as harness

DOWN_SECONDS = 60
PENDING, STARTED = ("pending", False), ("pending", True)


def finished(master, tip):
    return harness.wait_for(f"the builds of {tip[:12]}", lambda: len(
        [b for b in master.builds() if b["branch_tip"] == tip and
         b["result"] not in ("running", "retry")]) == 3, 60)


def main(case):
    fake = case.start_fake_github()
    fake.mode = "down"
    down_since = time.monotonic()
    master = case.start_master(case.write_config(case.github_config()))

    # A push whose statuses wait for GitHub, then retries.
    first = case.repo.branch("feature/first", ["first.txt"])
    master.push("feature/first", harness.ZERO, first)
    finished(master, first)
    harness.wait_for("retries while GitHub is down", lambda: fake.attempts >= 2, 30)

    # A second push, then the master killed with both pushes' statuses queued, and started again
    # while GitHub is still down.
    second = case.repo.branch("feature/second", ["second.txt"])
    master.push("feature/second", harness.ZERO, second)
    finished(master, second)
    before = fake.attempts
    harness.wait_for("a retry of the queued statuses", lambda: fake.attempts > before, 30)
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    master.start()

    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_since)))
    case.check(fake.accepted() == [],
               f"nothing accepted during the {DOWN_SECONDS} s outage ({fake.attempts} attempts)")
    # Rate limited (403, Retry-After: 1) until the reporter's next try has met the limit, and
    # one try after it.
    fake.mode = "ratelimit"
    harness.wait_for("a try that meets the rate limit",
                     lambda: any(code == 403 for code, _ in fake.refused), 70)
    limited = sum(1 for code, _ in fake.refused if code == 403)
    harness.wait_for("a try after Retry-After",
                     lambda: sum(1 for code, _ in fake.refused if code == 403) > limited, 10)
    fake.mode = "up"
    back = time.monotonic()
    harness.wait_for("the statuses after the outage",
                     lambda: len(fake.accepted(second, "libci/tests")) >= 3, 90)
    print(f"all statuses arrived {time.monotonic() - back:.1f} s after GitHub came back, "
          f"{time.monotonic() - down_since:.0f} s after the outage began", flush=True)
    time.sleep(1.5)  # anything sent twice would come now
    for name, tip in (("first", first), ("second", second)):
        got = fake.accepted(tip, "libci/tests")
        case.check(got == [PENDING, STARTED, ("success", True)],
                   f"the {name} push's statuses, queued before the kill, arrive after a minute "
                   f"down, a rate limit and a restart: in order, once each ({got})")
    case.check(len(fake.accepted()) == 6, f"nothing else was sent ({len(fake.accepted())})")
    log = open(f"{case.tmp}/master-1.log").read()
    case.check("github: the status libci/demo" in log and "retrying in" in log,
               "the outage is logged")
    case.check("left by the previous run are sent first" in
               open(f"{case.tmp}/master-2.log").read(),
               "the restarted master sends what the killed one stored")
    refused = sorted({code for code, _ in fake.refused})
    case.check(refused == [403, 503],
               f"only the outage and the rate limit refused anything ({refused})")


if __name__ == "__main__":
    harness.run(main)
