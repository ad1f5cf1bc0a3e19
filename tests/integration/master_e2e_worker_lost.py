#!/usr/bin/env python3
"""A ci-worker killed with -9 in the middle of a build: the build ends "retry", the same request
runs again on the other worker and succeeds, and /metrics counts one retry."""

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    workers = case.start_workers(master, 2)
    tip, first = case.slow_build(master)
    victim = next(w for w in workers if w.name == first["worker"])
    victim.kill()

    def retried():
        return next((b for b in master.builds() if b["request"] == first["request"] and
                     b["id"] != first["id"]), None)

    second = harness.wait_for("the retried build", retried)
    lost = master.get(f"/api/v1/builds/{first['id']}")
    case.check(lost["result"] == "retry", f"the build of the killed worker ended retry "
               f"({lost['result']})")
    case.check(second["worker"] != first["worker"],
               f"the request runs again on the other worker ({first['worker']} -> "
               f"{second['worker']})")
    open(case.release, "w").close()
    done = harness.wait_for("the retried build to end", lambda: master.finished_build(tip))
    case.check(done["result"] == "success" and done["id"] == second["id"],
               f"the retried build succeeded ({done['id']}: {done['result']})")
    metrics = master.get("/metrics").splitlines()
    labels = 'builder="tests",worker_class="remote",branch_type="other"'
    for line in (f'ci_builds_finished_total{{{labels},result="retry"}} 1',
                 f'ci_builds_finished_total{{{labels},result="success"}} 1'):
        case.check(line in metrics, f"/metrics: {line}")


if __name__ == "__main__":
    harness.run(main)
