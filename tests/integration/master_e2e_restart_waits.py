#!/usr/bin/env python3
"""Restart-safe tree-stable timers: twelve pushes, each acknowledged (200), then the master is
killed with -9 inside the tree-stable window and started again. With no other event (no push,
no force, no poller) every acknowledged push is requested at its deadline and builds."""

import signal
import time

import master_harness as harness

BRANCHES = 12
STABLE = 5  # seconds: the tree-stable timer, long enough to kill and restart inside it
LATE = 2  # seconds a request may come after its deadline (or after the restart, if later)


def main(case):
    config = case.write_config(case.standard_config(tree_stable_timer=f"{STABLE}s",
                                                    workers="local"))
    master = case.start_master(config)
    tips = [case.repo.branch(f"feature/w{i:02}", [f"w{i}.txt"]) for i in range(BRANCHES)]
    pushes = {}  # branch -> (sent, acknowledged, change id, tip)
    for i, tip in enumerate(tips):
        branch = f"feature/w{i:02}"
        sent = time.time()
        answer = master.push(branch, harness.ZERO, tip)
        pushes[branch] = (sent, time.time(), answer["changes"][0], tip)
    first_deadline = min(sent for sent, _, _, _ in pushes.values()) + STABLE
    if time.time() > first_deadline - 1:
        raise AssertionError(f"the {BRANCHES} pushes took longer than the {STABLE} s window")
    case.check(master.requests() == [] and master.builds() == [],
               f"{BRANCHES} pushes acknowledged; nothing requested inside the tree-stable window")
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    killed = time.time()

    master.start()
    restarted = time.time()
    print(f"killed {killed - first_deadline + STABLE:.1f} s after the first push, restarted "
          f"{restarted - killed:.1f} s later, {first_deadline - restarted:.1f} s before the "
          f"first deadline", flush=True)

    def requested():
        return {request["branch"]: request for request in master.all_requests()}

    def all_requested():
        found = requested()
        return found if len(found) == BRANCHES else None

    last_deadline = max(acked for _, acked, _, _ in pushes.values()) + STABLE
    try:
        found = harness.wait_for(f"{BRANCHES} build requests after the restart", all_requested,
                                 last_deadline - time.time() + 30)
    except AssertionError:
        found = requested()
        case.check(False, f"after the restart, with no other event, {len(found)} of "
                   f"{BRANCHES} acknowledged pushes were requested within 30 s of their "
                   f"deadlines ({sorted(found)})")
        return
    for branch, (sent, acked, change, tip) in sorted(pushes.items()):
        request = found[branch]
        submitted = harness.api_time(request["submitted"])
        latest = max(acked + STABLE, restarted) + LATE
        case.check(int(sent + STABLE) <= submitted <= latest and
                   request["changes"] == [change] and request["scheduler"] == "branches",
                   f"{branch}: requested at {request['submitted']} for a deadline at "
                   f"{time.strftime('%H:%M:%S', time.gmtime(sent + STABLE))}.."
                   f"{time.strftime('%H:%M:%S', time.gmtime(acked + STABLE))} "
                   f"(changes {request['changes']}, scheduler {request['scheduler']})")

    for branch, (_, _, _, tip) in sorted(pushes.items()):
        build = harness.wait_for(f"the build of {branch}", lambda tip=tip: master.finished_build(tip),
                                 60)
        case.check(build["result"] == "success" and build["request"] == found[branch]["id"],
                   f"{branch} built: {build['result']}")
    changes = master.get("/api/v1/changes?limit=50")["changes"]
    case.check(len(changes) == BRANCHES, f"no other change arrived ({len(changes)} changes)")


if __name__ == "__main__":
    harness.run(main)
