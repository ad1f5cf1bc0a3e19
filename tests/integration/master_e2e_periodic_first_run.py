#!/usr/bin/env python3
"""A fresh master with a periodic scheduler runs it one interval after it starts, with no other
event (a scheduler with no next run yet is due at once, and that tick gives it one; before,
it was armed only by the first webhook or force, which a master without webhooks never gets)."""

import time

import master_harness as harness

INTERVAL = 3  # seconds
LATE = 2  # seconds a run may come after its time (the API's times are whole seconds)


def main(case):
    config = case.write_config(case.standard_config(workers="local", extra_schedulers=f"""
  periodic: {{type: periodic, repository: demo, builders: [tests], interval: {INTERVAL}s}}
"""))
    started = time.time()
    master = case.start_master(config)
    ready = time.time()

    def periodic_requests():
        return [r for r in master.all_requests() if r["scheduler"] == "periodic"]

    harness.wait_for("a periodic run", periodic_requests, INTERVAL + 5)
    first = periodic_requests()[0]
    submitted = harness.api_time(first["submitted"])
    case.check(int(started + INTERVAL) <= submitted <= ready + INTERVAL + LATE,
               f"the first periodic run came one interval after the start ({first['submitted']})")


if __name__ == "__main__":
    harness.run(main)
