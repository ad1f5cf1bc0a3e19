#!/usr/bin/env python3
"""Upload steps, the master's side (issue 16), through a real ci-master and a real ci-worker:
- after_upload does not hold up other uploads: build `slow`'s after_upload marks that it started
  and then waits for a file the test creates only once build `quick` (whose upload starts after
  that mark) ended; when after_upload commands shared the uploads' one thread, `quick` could not
  end first;
- partial files of uploads never resumed (DATA_DIR/results/.partial, their times set back 25 h)
  are deleted by the sweep at the master's start; a recent one is kept;
- /metrics: bytes and files uploaded by builder, a refused upload counted as a failure, and the
  bytes kept under DATA_DIR/results (measured by the sweep, plus what uploads wrote since).
"""

import json
import os
import time

import master_harness as harness


def wait_file(path, seconds):
    """A shell loop that waits for `path` at most `seconds`."""
    return (f'i=0; while [ ! -e "{path}" ] && [ $i -lt {seconds * 10} ]; do sleep 0.1; '
            f'i=$((i + 1)); done')


def config(case, started, release):
    slow_after = json.dumps(f'echo "after_upload of slow started"; touch "{started}"; '
                            f'{wait_file(release, 150)}; echo released')
    quick_make = json.dumps(f'{wait_file(started, 60)}; mkdir -p out && printf 12345 > out/b.txt '
                            f'&& printf 123 > out/c.txt')
    return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite,
              max_upload_size: 1MiB}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  remote: {{passwords: ["{case.passwords[0]}"], max_builds: 3}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  slow:
    repository: demo
    workers: [remote]
    steps:
      - {{name: make, run: "mkdir -p out && echo slow > out/a.txt"}}
      - {{name: upload, upload: {{from: out, to: files}}, after_upload: {slow_after}}}
  quick:
    repository: demo
    workers: [remote]
    steps:
      - {{name: make, run: {quick_make}}}
      - name: upload
        upload: {{from: out, to: files}}
        after_upload: "echo quick after_upload done"
  too-big:
    repository: demo
    workers: [remote]
    steps:
      - {{name: make, run: "mkdir -p huge && truncate -s 2M huge/a"}}
      - {{name: upload, upload: {{from: huge, to: huge}}}}
schedulers:
  force: {{type: force, builders: [slow, quick, too-big]}}
"""


def metric(text, name):
    """The value of the series `name` (with its labels) in Prometheus text, or None."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def main(case):
    started = os.path.join(case.tmp, "slow-after-upload-started")
    release = os.path.join(case.tmp, "release-slow")
    # Partial files left by uploads never resumed: one 25 h old, one written an hour ago (in
    # the data directory the master is started with: Master.data_dir()).
    partials = os.path.join(case.tmp, "master-data", "results", ".partial")
    os.makedirs(partials)
    old = os.path.join(partials, "a" * 64 + "-10")
    recent = os.path.join(partials, "b" * 64 + "-3")
    for path, size, age in ((old, 10, 25 * 3600), (recent, 3, 3600)):
        with open(path, "wb") as out:
            out.write(b"p" * size)
        then = time.time() - age
        os.utime(path, (then, then))
    master = case.start_master(case.write_config(config(case, started, release)))
    case.check(master.data_dir() == os.path.join(case.tmp, "master-data"), "the data directory")
    harness.wait_for("the sweep of the partial files", lambda: "deleted the partial file" in
                     open(os.path.join(case.tmp, "master-1.log")).read(), 30)
    case.check(not os.path.exists(old), "the partial file not written for 25 h was deleted")
    case.check(os.path.exists(recent), "the partial file written an hour ago was kept")

    worker = case.start_worker(master, 0, name="remote/0")
    harness.wait_for("the worker", lambda: master.connected("remote/0"), 30)
    status, answer = master.post("/api/v1/force", json.dumps(
        {"builders": ["slow", "quick", "too-big"], "branch": "master"}).encode(), auth=case.auth)
    case.check(status == 202, f"the builds are forced ({status} {answer})")

    def ended(builder):
        builds = [b for b in master.builds() if b["builder"] == builder and
                  b["result"] not in ("running", "retry")]
        return builds[0] if builds else None

    # quick's upload begins after slow's after_upload started, and ends while it still runs.
    quick = harness.wait_for("build quick to end while slow's after_upload runs",
                             lambda: ended("quick"), 90)
    case.check(os.path.exists(started), "slow's after_upload had started before")
    case.check(not os.path.exists(release) and ended("slow") is None,
               "slow was still in its after_upload when quick ended")
    case.check(quick["result"] == "success", f"quick succeeded ({quick['result']})")
    log = master.step_log(quick["id"], 2)
    case.check("quick after_upload done" in log, f"quick's after_upload ran ({log[-300:]!r})")

    open(release, "w").close()
    slow = harness.wait_for("build slow to end", lambda: ended("slow"), 60)
    too_big = harness.wait_for("build too-big to end", lambda: ended("too-big"), 60)
    case.check(slow["result"] == "success", f"slow succeeded ({slow['result']})")
    log = master.step_log(slow["id"], 2)
    case.check("after_upload of slow started" in log and "released" in log,
               f"slow's after_upload output is in its log ({log[-300:]!r})")
    case.check(too_big["result"] == "failure", f"too-big failed ({too_big['result']})")

    text = master.get("/metrics")
    expected = {
        'ci_upload_bytes_total{builder="quick"}': 8,
        'ci_upload_files_total{builder="quick"}': 2,
        'ci_upload_bytes_total{builder="slow"}': 5,
        'ci_upload_files_total{builder="slow"}': 1,
        'ci_upload_failures_total{builder="too-big"}': 1,
        'ci_upload_files_total{builder="too-big"}': 0,
        # the recent partial file the sweep measured, then the two uploads
        "ci_results_bytes": 3 + 8 + 5,
    }
    for name, value in expected.items():
        case.check(metric(text, name) == value, f"{name} is {value} ({metric(text, name)})")
    worker.kill()


if __name__ == "__main__":
    harness.run(main)
