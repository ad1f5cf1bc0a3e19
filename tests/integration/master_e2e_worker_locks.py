#!/usr/bin/env python3
"""A lock of scope worker: on one ci-worker with max_builds 2, three branches pushed at once
build one after the other (each step writes start and end marks to one file), although the
worker has a second slot; with a second worker, two builds hold the lock at once, one on each."""

import os

import master_harness as harness


def main(case):
    config = case.standard_config(locks="[functional]").replace(
        "  one: {max_count: 1}\n", "  one: {max_count: 1}\n  functional: {scope: worker}\n")
    master = case.start_master(case.write_config(config))
    first = case.start_workers(master, 1)[0]
    builds = case.serial_lock_builds(master)
    case.check(all(b["worker"] == first.name for b in builds),
               f"all three ran on {first.name}, which has two slots "
               f"({[b['worker'] for b in builds]})")

    # Two workers: the lock is each worker's own, so two slow builds hold it at once.
    second = case.start_worker(master, 1)
    harness.wait_for("the second worker", lambda: master.connected(second.name), 30)
    slow = []
    for i in range(2):
        tip = case.repo.branch(f"feature/slow-{i}", ["slow"])
        master.push(f"feature/slow-{i}", harness.ZERO, tip, "slow")
        slow.append(tip)
    running = harness.wait_for(
        "two slow builds running at once",
        lambda: (lambda r: r if len(r) == 2 else None)(
            [b for b in master.builds("running=1") if b["branch_tip"] in slow]), 60)
    case.check(sorted(b["worker"] for b in running) == sorted([first.name, second.name]),
               f"one on each worker ({[b['worker'] for b in running]})")
    open(case.release, "w").close()
    done = [harness.wait_for("the slow builds", lambda tip=tip: master.finished_build(tip))
            for tip in slow]
    case.check(all(b["result"] == "success" for b in done),
               f"both slow builds succeeded ({[b['result'] for b in done]})")
    os.remove(case.release)


if __name__ == "__main__":
    harness.run(main)
