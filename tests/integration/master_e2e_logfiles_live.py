#!/usr/bin/env python3
"""A step's log file (`logfiles`, issue 16) read while the step runs, through a real ci-master
and a real ci-worker: GET .../steps/N/logs/NAME shows what the file held so far while the step
still runs (its first line, not its second, which the step writes only once the test let it),
and the whole file once the step ended."""

import json
import os
import urllib.error

import master_harness as harness


def config(case, release):
    step = json.dumps(f'echo first >> build.log; echo started; i=0; '
                      f'while [ ! -e "{release}" ] && [ $i -lt 900 ]; do sleep 0.1; '
                      f'i=$((i + 1)); done; echo second >> build.log')
    return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  remote: {{passwords: ["{case.passwords[0]}"]}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  growing:
    repository: demo
    workers: [remote]
    steps:
      - name: grow
        run: {step}
        logfiles: {{build.log: build.log}}
schedulers:
  force: {{type: force, builders: [growing]}}
"""


def main(case):
    release = os.path.join(case.tmp, "release")
    master = case.start_master(case.write_config(config(case, release)))
    worker = case.start_worker(master, 0, name="remote/0")
    harness.wait_for("the worker", lambda: master.connected("remote/0"), 30)
    status, answer = master.post("/api/v1/builders/growing/force", json.dumps(
        {"branch": "master"}).encode(), {"Content-Type": "application/json"}, auth=case.auth)
    case.check(status == 202, f"the build is forced ({status} {answer})")
    build = harness.wait_for("the build to run", lambda: next(
        (b for b in master.builds() if b["result"] == "running"), None), 30)
    path = f"/api/v1/builds/{build['id']}/steps/1/logs/build.log"

    def so_far():
        try:
            body = master.get(path)
        except urllib.error.HTTPError as error:
            if error.code != 404:  # 404 until its first chunk is stored; nothing else
                raise
            return None
        return body if "first" in body else None

    text = harness.wait_for("the log file's first line while the step runs", so_far, 30)
    running = master.get(f"/api/v1/builds/{build['id']}")
    case.check(running["result"] == "running" and not os.path.exists(release),
               f"read while the step still runs ({running['result']})")
    case.check(text == "first\n", f"it shows what the file held so far ({text!r})")

    open(release, "w").close()
    harness.wait_for("the build to end", lambda: master.get(
        f"/api/v1/builds/{build['id']}")["result"] not in ("running",), 60)
    ended = master.get(f"/api/v1/builds/{build['id']}")
    case.check(ended["result"] == "success", f"the build succeeded ({ended['result']})")
    whole = master.get(path)
    case.check(whole == "first\nsecond\n", f"the whole file once the step ended ({whole!r})")
    worker.kill()


if __name__ == "__main__":
    harness.run(main)
