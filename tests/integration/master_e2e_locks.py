#!/usr/bin/env python3
"""A lock of 1: three branches pushed at once, on two ci-workers with two slots each, build one
after the other (each step writes start and end marks to one file)."""

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    case.start_workers(master, 2)
    open(case.marks, "w").close()
    tips = [case.repo.branch(f"feature/lock-{i}", [f"lock{i}.txt"]) for i in range(3)]
    for i, tip in enumerate(tips):
        master.push(f"feature/lock-{i}", harness.ZERO, tip, "lock")
    builds = [harness.wait_for("the lock builds", lambda tip=tip: master.finished_build(tip))
              for tip in tips]
    case.check(all(b["result"] == "success" for b in builds),
               f"the three builds succeeded ({[b['result'] for b in builds]})")
    lines = open(case.marks).read().split()
    events = lines[0::2]
    overlapping = any(events[i] == "start" and events[i + 1] == "start"
                      for i in range(len(events) - 1))
    case.check(len(events) == 6 and not overlapping,
               f"a lock of 1 never ran two builds at once: {' '.join(lines)}")


if __name__ == "__main__":
    harness.run(main)
