#!/usr/bin/env python3
"""A maintenance builder without a repository on a periodic scheduler: it runs on a ci-worker
with no checkout, its steps in an empty work directory (what a run leaves is gone at the next),
and CI_REPOSITORY is empty. It can be forced as well."""

import json

import master_harness as harness

STEP = ('echo "before: [$(ls -A | tr "\\n" " ")]"; echo "repository: [$CI_REPOSITORY]"; '
        'echo stale > stale.txt; mkdir -p cache; echo kept > cache/file; pwd')


def main(case):
    config = f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  remote: {{passwords: ["{case.passwords[0]}", "{case.passwords[1]}"], max_builds: 2}}
builders:
  cleanup:
    workers: [remote]
    steps:
      - name: prune
        run: {json.dumps(STEP)}
schedulers:
  housekeeping: {{type: periodic, builders: [cleanup], interval: 2s}}
  force: {{type: force, builders: [cleanup]}}
"""
    master = case.start_master(case.write_config(config))
    case.start_workers(master, 1)

    def finished():
        done = [b for b in master.builds("builder=cleanup")
                if b["result"] not in ("running", "retry")]
        return done if len(done) >= 2 else None

    builds = sorted(harness.wait_for("two periodic runs", finished, 30), key=lambda b: b["id"])
    case.check(all(b["result"] == "success" for b in builds),
               f"both runs succeeded ({[b['result'] for b in builds]})")
    case.check(all(b["branch_tip"] in ("", None) for b in builds), "nothing was checked out")
    detail = master.get(f"/api/v1/builds/{builds[1]['id']}")
    case.check([s["name"] for s in detail["steps"]] == ["workdir", "prune"],
               f"step 0 is the work directory, not a checkout ({[s['name'] for s in detail['steps']]})")
    log = master.step_log(builds[1]["id"], 1)
    case.check("before: []" in log, f"the second run started in an empty directory ({log!r})")
    case.check("repository: []" in log, "CI_REPOSITORY is empty")
    case.check("/cleanup/0" in log, "it ran in the builder's leased slot directory")
    requests = [r for r in master.all_requests() if r["builder"] == "cleanup"]
    case.check(all(r["scheduler"] == "housekeeping" and r["repository"] == "" for r in requests),
               "its requests come from the periodic scheduler, without a repository")


    # Forced too (no branch: there is none to default to).
    status, answer = master.post("/api/v1/builders/cleanup/force", b"{}", auth=case.auth)
    case.check(status == 202, f"forcing it is accepted ({status} {answer})")
    forced = harness.wait_for(
        "the forced run",
        lambda: next((b for b in master.builds(f"request={answer['requests'][0]}")
                      if b["result"] not in ("running", "retry")), None), 30)
    case.check(forced["result"] == "success", f"the forced run succeeded ({forced['result']})")


if __name__ == "__main__":
    harness.run(main)
