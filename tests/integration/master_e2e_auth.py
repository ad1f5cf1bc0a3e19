#!/usr/bin/env python3
"""The REST API's writes need the config's auth: forcing a build and issuing worker tokens
without credentials (or with a wrong password) is refused with 401; a forced build runs; tokens
are only for EC2 latent classes; /metrics counts results and durations."""

import json

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    tip = case.repo.branch("feature/good", ["good.txt"])
    force = "/api/v1/builders/tests/force"
    body = json.dumps({"branch": "feature/good", "reason": "e2e"}).encode()
    status, answer = master.post(force, body)
    case.check(status == 401, f"force without credentials: 401 ({status}: {answer})")
    status, answer = master.post(force, body, auth=(case.auth[0], "wrong-password"))
    case.check(status == 401, f"force with a wrong password: 401 ({status}: {answer})")
    status, answer = master.post("/api/v1/workers/tokens", b'{"class": "latent"}')
    case.check(status == 401, f"a worker token without credentials: 401 ({status}: {answer})")
    case.check(master.requests() == [], "the refused requests queued nothing")

    status, answer = master.post("/api/v1/workers/tokens", b'{"class": "remote"}',
                                 auth=case.auth)
    case.check(status == 400 and "not an EC2 worker class" in answer.get("error", ""),
               f"no tokens for static classes ({status}: {answer})")

    case.start_workers(master, 1)
    status, answer = master.post(force, body, auth=case.auth)
    case.check(status == 202 and len(answer.get("requests", [])) == 1,
               f"force with auth: 202 ({status}: {answer})")
    forced = answer["requests"][0]
    build = harness.wait_for("the forced build", lambda: master.finished_build(tip))
    case.check(build["request"] == forced and build["result"] == "success" and
               "e2e" in build["reason"],
               f"the forced request built feature/good: {build['result']} ({build['reason']})")
    metrics = master.get("/metrics").splitlines()
    labels = 'builder="tests",worker_class="remote",branch_type="other"'
    line = f'ci_builds_finished_total{{{labels},result="success"}} 1'
    case.check(line in metrics, f"/metrics: {line}")
    case.check(any(m.startswith(f'ci_build_duration_seconds_count{{{labels}}} 1')
                   for m in metrics), "/metrics: one build duration observed")


if __name__ == "__main__":
    harness.run(main)
