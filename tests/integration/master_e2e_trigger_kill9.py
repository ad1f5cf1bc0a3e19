#!/usr/bin/env python3
"""Trigger steps are not repeated by a master killed with -9. Two builds are killed with the
master after their trigger steps queued their requests: `package` (wait: false) holds in its
next step, `gate` (wait: true) waits for `slow`, which runs and holds. After the restart both
requests run again as new builds and reach the same trigger steps: `package` gets the request
queued before (its log says so), `gate` waits for the request queued before and takes its
result; no second request is queued, and `slow` ends once (its lost build retried)."""

import json
import os
import signal

import master_harness as harness


def step_started(master, build, name):
    steps = master.get(f"/api/v1/builds/{build}").get("steps", [])
    return any(step["name"] == name for step in steps)


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
  gate:
    repository: demo
    workers: [remote]
    steps:
      - name: slow
        trigger: {{builders: [slow], wait: true}}
  slow:
    repository: demo
    workers: [remote]
    steps:
      - {{name: test, run: "echo slow holding; while [ -e {hold} ]; do sleep 0.1; done"}}
schedulers:
  force: {{type: force, builders: [package, gate]}}
  triggered: {{type: triggerable, builders: [acceptance, slow]}}
"""
    open(hold, "w").close()
    master = case.start_master(case.write_config(config))
    workers = case.start_workers(master, 2)
    tip = case.repo.branch("feature/kill", ["kill.txt"])
    requests = {}
    for builder in ("package", "gate"):
        status, answer = master.post(f"/api/v1/builders/{builder}/force",
                                     json.dumps({"branch": "feature/kill"}).encode(),
                                     auth=case.auth)
        case.check(status == 202, f"forced the {builder} build ({status} {answer})")
        requests[builder] = answer["requests"][0]

    def triggered(builder):
        return [r for r in master.all_requests()
                if r.get("triggered_by_request") == requests[builder]]

    def build_of(request, finished=False):
        for build in master.builds(f"request={request}"):
            if not finished or build["result"] not in ("running", "retry"):
                return build
        return None

    first = harness.wait_for("the package build", lambda: build_of(requests["package"]))
    harness.wait_for("package's step 2", lambda: step_started(master, first["id"], "hold"))
    master.wait_step_output(first["id"], "holding", step=2)
    slow_request = harness.wait_for("gate's triggered request", lambda: triggered("gate"))[0]
    slow_first = harness.wait_for("the slow build", lambda: build_of(slow_request["id"]))
    harness.wait_for("the slow build's step", lambda: step_started(master, slow_first["id"], "test"))
    before = {builder: triggered(builder) for builder in requests}
    case.check(all(len(queued) == 1 for queued in before.values()),
               f"each trigger step queued one request ({[len(q) for q in before.values()]})")
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    for worker in workers:
        worker.kill(signal.SIGKILL)  # they cannot follow the master to its new ports

    master.start()
    case.start_workers(master, 2)
    retried = harness.wait_for(
        "the package request's new build",
        lambda: next((b for b in master.builds(f"request={requests['package']}")
                      if b["id"] != first["id"]), None), 60)
    harness.wait_for("the retried package's step 2",
                     lambda: step_started(master, retried["id"], "hold"), 60)
    os.remove(hold)
    done = {builder: harness.wait_for(f"the retried {builder} build to end",
                                      lambda r=request: build_of(r, finished=True), 60)
            for builder, request in requests.items()}
    case.check(all(b["result"] == "success" for b in done.values()),
               f"the retried builds succeeded ({[b['result'] for b in done.values()]})")
    log = master.step_log(done["package"]["id"], 1)
    case.check("requested before" in log and f"request {before['package'][0]['id']}" in log,
               f"package's trigger step got the request queued before ({log.strip()!r})")
    after = {builder: triggered(builder) for builder in requests}
    case.check(all([r["id"] for r in after[b]] == [r["id"] for r in before[b]] for b in requests),
               "no trigger step queued a second request after the restart")
    slow = build_of(slow_request["id"], finished=True)
    case.check(slow["result"] == "success" and slow["id"] != slow_first["id"],
               f"the slow request's lost build was retried and succeeded ({slow['result']})")
    gate_log = master.step_log(done["gate"]["id"], 1)
    case.check(f"slow: success (request {slow_request['id']}, build {slow['id']})" in gate_log,
               f"the retried gate waited for that request's build ({gate_log.strip()!r})")
    accepted = [b for b in master.builds("builder=acceptance")
                if b["result"] not in ("running", "retry")]
    case.check(len(accepted) == 1 and accepted[0]["branch_tip"] == tip,
               f"the acceptance builder built once ({len(accepted)})")


if __name__ == "__main__":
    harness.run(main)
