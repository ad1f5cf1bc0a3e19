#!/usr/bin/env python3
"""Trigger steps on real ci-master and ci-worker processes. A package-like builder triggers an
acceptance-like builder: master moves on between the package build's checkout and its trigger
step, and the acceptance build still tests the tree the package build tested (the same branch
tip, merged with the same, older, master commit: the same merge commit). The forced build's
properties reach the triggered one. A `wait: true` step takes the worst result of its triggered
builds. /metrics counts builds by worker class and branch type."""

import json
import os

import master_harness as harness


def config(case):
    wait = os.path.join(case.tmp, "package-may-go")
    return f"""{case.remote_config()}builders:
  package:
    repository: demo
    workers: [remote]
    steps:
      - name: build
        run: "echo packaged $(git rev-parse HEAD); while [ ! -e {wait} ]; do sleep 0.1; done"
      - name: acceptance
        trigger: {{builders: [acceptance]}}
  acceptance:
    repository: demo
    workers: [remote]
    steps:
      - name: test
        run: "echo tested $(git rev-parse HEAD) flavour=$CI_PROP_flavour; if [ -e broken ]; then exit 1; fi"
  failing:
    repository: demo
    workers: [remote]
    steps:
      - {{name: test, run: "echo failing on purpose; exit 4"}}
  gate:
    repository: demo
    workers: [remote]
    steps:
      - name: all
        trigger: {{builders: [acceptance, failing], wait: true}}
      - {{name: after, run: "echo not reached"}}
schedulers:
  force: {{type: force, builders: [package, gate]}}
  triggered: {{type: triggerable, builders: [acceptance, failing]}}
""", wait


def move_master(case, name):
    """Commits a new file `name` on origin's master; returns the new tip."""
    work = case.repo.work
    harness.git("fetch", "-q", "origin", cwd=work)
    harness.git("checkout", "-q", "-B", "master", "origin/master", cwd=work)
    case.repo.write(name, name + "\n")
    harness.git("add", name, cwd=work)
    harness.git("commit", "-qm", f"master: {name}", cwd=work)
    harness.git("push", "-q", "origin", "HEAD:master", cwd=work)
    return harness.git("rev-parse", "HEAD", cwd=work)


def force(case, master, builder, body):
    status, answer = master.post(f"/api/v1/builders/{builder}/force", json.dumps(body).encode(),
                                 auth=case.auth)
    if status != 202 or len(answer.get("requests", [])) != 1:
        raise AssertionError(f"force {builder}: {status} {answer}")
    return answer["requests"][0]


def build_of_request(master, request):
    """The finished build of request `request` (not retry), or None."""
    for build in master.builds(f"request={request}"):
        if build["result"] not in ("running", "retry"):
            return build
    return None


def triggered_by(master, request):
    return [r for r in master.all_requests() if r.get("triggered_by_request") == request]


def main(case):
    text, may_go = config(case)
    master = case.start_master(case.write_config(text))
    case.start_workers(master, 2)
    tip = case.repo.branch("feature/pkg", ["pkg.txt"])
    # Master moves once before the build (so the build is a real merge) and once during it.
    old_master = move_master(case, "before.txt")

    # 1. Pinned: master moves while the package build runs; the acceptance build merges the
    # master commit the package build merged.
    package_request = force(case, master, "package",
                            {"branch": "feature/pkg", "properties": {"flavour": "vanilla"}})
    running = harness.wait_for("the package build", lambda: master.running_build(tip))
    master.wait_step_output(running["id"], "packaged")
    new_master = move_master(case, "during.txt")
    case.check(new_master != old_master, "master moved on during the package build")
    open(may_go, "w").close()
    package = harness.wait_for("the package build to end",
                               lambda: build_of_request(master, package_request))
    case.check(package["result"] == "success", f"the package build succeeded ({package['result']})")
    case.check(package["target_tip"] == old_master and package["merge_commit"],
               f"the package build merged the old master ({package['target_tip'][:12]})")
    requested = harness.wait_for("the triggered request", lambda: triggered_by(master, package_request))
    case.check(len(requested) == 1 and requested[0]["builder"] == "acceptance" and
               requested[0]["triggered_by_step"] == 2,
               f"one acceptance request, from step 2 ({[(r['builder'], r.get('triggered_by_step')) for r in requested]})")
    trigger_log = master.step_log(package["id"], 2)
    case.check(f"request {requested[0]['id']}" in trigger_log and "success" in trigger_log,
               f"the trigger step's log names the request ({trigger_log.strip()!r})")
    acceptance = harness.wait_for("the acceptance build",
                                  lambda: build_of_request(master, requested[0]["id"]))
    case.check(acceptance["result"] == "success",
               f"the acceptance build succeeded ({acceptance['result']})")
    case.check(acceptance["branch_tip"] == tip and acceptance["branch"] == "feature/pkg",
               f"the acceptance build built the same branch tip ({acceptance['branch_tip'][:12]})")
    case.check(acceptance["target_tip"] == old_master,
               f"the acceptance build merged the pinned master {old_master[:12]}, not the newer "
               f"{new_master[:12]} (it merged {acceptance['target_tip'][:12]})")
    case.check(acceptance["merge_commit"] == package["merge_commit"],
               "the acceptance build tested the same tree: the same merge commit "
               f"({acceptance['merge_commit'][:12]} vs {package['merge_commit'][:12]})")
    log = master.step_log(acceptance["id"], 1)
    case.check(f"tested {package['merge_commit']}" in log and "flavour=vanilla" in log,
               f"the acceptance step saw the merge and the passed-on property ({log.strip()!r})")
    checkout_log = master.step_log(acceptance["id"], 0)
    case.check("pinned" in checkout_log, "the acceptance checkout says it is pinned")

    # 2. wait: true takes the worst result: acceptance succeeds, failing fails.
    gate_request = force(case, master, "gate", {"branch": "feature/pkg"})
    gate = harness.wait_for("the gate build", lambda: build_of_request(master, gate_request), 90)
    triggered = triggered_by(master, gate_request)
    results = {}
    for request in triggered:
        build = build_of_request(master, request["id"])
        results[request["builder"]] = build["result"] if build else None
    case.check(results == {"acceptance": "success", "failing": "failure"},
               f"both triggered builds ran to their end first ({results})")
    case.check(gate["result"] == "failure", f"the waiting build took the worst: {gate['result']}")
    steps = master.get(f"/api/v1/builds/{gate['id']}")["steps"]
    case.check([s["result"] for s in steps] == ["success", "failure"],
               f"the trigger step failed and the build halted there ({[s['result'] for s in steps]})")
    gate_log = master.step_log(gate["id"], 1)
    case.check("failing: failure" in gate_log and "acceptance: success" in gate_log,
               f"the waiting step's log names each result ({gate_log.strip()!r})")
    case.check(gate["target_tip"] == new_master,
               "the gate build, forced after master moved, merged the newer master")
    for request in triggered:
        build = build_of_request(master, request["id"])
        case.check(build["target_tip"] == new_master,
                   f"its {request['builder']} build was pinned to the gate's merge")

    # 3. /metrics: counted by worker class and branch type.
    metrics = master.get("/metrics").splitlines()
    line = ('ci_builds_finished_total{builder="failing",worker_class="remote",'
            'branch_type="other",result="failure"} 1')
    case.check(line in metrics, f"/metrics: {line}")


if __name__ == "__main__":
    harness.run(main)
