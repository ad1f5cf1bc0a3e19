#!/usr/bin/env python3
"""A step's log file (`logfiles`, issue 16) read while the step runs, through a real ci-master
and a real ci-worker: GET .../steps/N/logs/NAME shows what the file held so far while the step
still runs (its first line, not its second, which the step writes only once the test let it),
and the whole file once the step ended; with ?follow=1 the answer goes on as the file grows and
ends with the step (two followers: one from before the file existed, one from its first line);
following a log file the step does not have is a 404, following one of a finished build gives
it whole."""

import http.client
import json
import os
import threading
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


class Follow:
    """GET `path` (chunked) on a thread, keeping what arrives until the answer ends."""

    def __init__(self, master, path):
        self.text, self.status, self.done = "", None, threading.Event()
        self.connection = http.client.HTTPConnection("127.0.0.1", master.web, timeout=120)
        self.connection.request("GET", path)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        try:
            response = self.connection.getresponse()
            self.status = response.status
            while True:
                data = response.read1(65536)
                if not data:
                    break
                self.text += data.decode()
        finally:
            self.done.set()


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
    early = Follow(master, path + "?follow=1")  # maybe before the file's first chunk

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
    late = Follow(master, path + "?follow=1")
    harness.wait_for("the followers to get the first line",
                     lambda: early.text == "first\n" and late.text == "first\n", 30)
    case.check(not early.done.is_set() and not late.done.is_set() and early.status == 200,
               f"the followers' answers go on while the step runs ({early.status})")
    try:
        master.get(f"/api/v1/builds/{build['id']}/steps/1/logs/nope?follow=1")
        case.check(False, "following a log file the step does not have is a 404")
    except urllib.error.HTTPError as error:
        case.check(error.code == 404, f"following a log file the step does not have is a 404 "
                   f"({error.code})")

    open(release, "w").close()
    for name, follower in (("early", early), ("late", late)):
        case.check(follower.done.wait(60), f"the {name} follower's answer ends with the step")
        case.check(follower.text == "first\nsecond\n",
                   f"the {name} follower got the whole file, in order, once ({follower.text!r})")
    harness.wait_for("the build to end", lambda: master.get(
        f"/api/v1/builds/{build['id']}")["result"] not in ("running",), 60)
    ended = master.get(f"/api/v1/builds/{build['id']}")
    case.check(ended["result"] == "success", f"the build succeeded ({ended['result']})")
    whole = master.get(path)
    case.check(whole == "first\nsecond\n", f"the whole file once the step ended ({whole!r})")
    followed = master.get(path + "?follow=1")
    case.check(followed == "first\nsecond\n",
               f"following a finished build's log file gives it whole ({followed!r})")
    worker.kill()


if __name__ == "__main__":
    harness.run(main)
