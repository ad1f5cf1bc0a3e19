#!/usr/bin/env python3
"""A trigger step is not repeated by a master killed with -9: the build that triggered is
killed with the master after its step queued the triggered request; after the restart its
request runs again as a new build, reaches the same trigger step, and gets the request queued
before (its log says so) instead of a second one. The triggered request runs once."""

import json
import os
import signal

import master_harness as harness


def wait_holding(master, build):
    """Waits until build `build` runs its step 2, `hold` (its log is a 404 until it starts)."""
    def started():
        steps = master.get(f"/api/v1/builds/{build}").get("steps", [])
        return any(step["name"] == "hold" for step in steps)

    harness.wait_for(f"step 2 of build {build}", started, 60)
    master.wait_step_output(build, "holding", step=2)


def main(case):
    hold = os.path.join(case.tmp, "hold")
    config = f"""{case.remote_config()}builders:
  package:
    repository: demo
    workers: [remote]
    steps:
      - name: acceptance
        trigger: {{builders: [acceptance]}}
      - name: hold
        run: "echo holding; while [ -e {hold} ]; do sleep 0.1; done"
  acceptance:
    repository: demo
    workers: [remote]
    steps:
      - {{name: test, run: "echo accepted $(git rev-parse HEAD)"}}
schedulers:
  force: {{type: force, builders: [package]}}
  triggered: {{type: triggerable, builders: [acceptance]}}
"""
    open(hold, "w").close()
    master = case.start_master(case.write_config(config))
    old_worker = case.start_workers(master, 1)[0]
    tip = case.repo.branch("feature/kill", ["kill.txt"])
    status, answer = master.post("/api/v1/builders/package/force",
                                 json.dumps({"branch": "feature/kill"}).encode(), auth=case.auth)
    case.check(status == 202, f"forced the package build ({status} {answer})")
    request = answer["requests"][0]
    first = harness.wait_for("the package build", lambda: master.running_build(tip))
    wait_holding(master, first["id"])

    def triggered():
        return [r for r in master.all_requests() if r.get("triggered_by_request") == request]

    before = triggered()
    case.check(len(before) == 1, f"the trigger step queued one request ({len(before)})")
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    old_worker.kill(signal.SIGKILL)  # it cannot follow the master to its new ports

    master.start()
    case.start_worker(master, 1)
    retried = harness.wait_for(
        "the package request's new build",
        lambda: next((b for b in master.builds(f"request={request}") if b["id"] != first["id"]),
                     None), 60)
    wait_holding(master, retried["id"])
    os.remove(hold)
    done = harness.wait_for(
        "the retried package build to end",
        lambda: next((b for b in master.builds(f"request={request}")
                      if b["result"] not in ("running", "retry")), None), 60)
    case.check(done["result"] == "success", f"the retried build succeeded ({done['result']})")
    log = master.step_log(done["id"], 1)
    case.check("requested before" in log and f"request {before[0]['id']}" in log,
               f"its trigger step got the request queued before ({log.strip()!r})")
    after = triggered()
    case.check([r["id"] for r in after] == [before[0]["id"]],
               f"still one triggered request after the restart ({[r['id'] for r in after]})")
    accepted = harness.wait_for(
        "the triggered build",
        lambda: next((b for b in master.builds(f"request={before[0]['id']}")
                      if b["result"] not in ("running", "retry")), None), 60)
    case.check(accepted["result"] == "success" and accepted["branch_tip"] == tip,
               f"the triggered build ran ({accepted['result']})")
    finished = [b for b in master.builds("builder=acceptance")
                if b["result"] not in ("running", "retry")]
    case.check(len(finished) == 1, f"the acceptance builder built once ({len(finished)})")


if __name__ == "__main__":
    harness.run(main)
