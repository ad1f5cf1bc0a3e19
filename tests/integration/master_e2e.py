#!/usr/bin/env python3
"""ci-master and two ci-workers end to end, as real processes on 127.0.0.1.

A local bare repository with master and feature branches; GitHub push webhooks signed with
Python's own hmac (not libci's); the REST API read with urllib. Checked:
- a bad signature is refused (403) and creates nothing; ping answered; a delivery sent twice is
  stored once;
- a push builds after the tree-stable wait, as a merge against master whose commit equals what
  the git CLI makes; a failing branch ends "failure" with its log;
- a lock of 1 never runs two builds at once (the steps write start/end marks to one file);
- a worker killed with -9 mid-build: the build ends "retry" and the same request runs on the
  other worker;
- a log followed live (chunked text and Server-Sent Events) until the step ends;
- forcing a build needs the config's auth; /metrics counts results;
- a latent worker logs in once with a one-time token (reuse refused), and after its connection
  was dropped logs in again with the secret its welcome gave it;
- the master killed with -9 while requests wait and a build runs: after a restart the requests
  are still there and run, and the interrupted build ends "retry";
- SIGTERM: the master lets the running build finish, then exits 0.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

BUILD = os.environ["LIBCI_BUILD_DIR"]
MASTER = os.path.join(BUILD, "tools", "ci-master", "ci-master")
WORKER = os.path.join(BUILD, "tools", "ci-worker", "ci-worker")
SECRET = "webhook-" + uuid.uuid4().hex
PASSWORDS = [uuid.uuid4().hex, uuid.uuid4().hex]
AUTH = ("admin", uuid.uuid4().hex)

failures = []


def check(condition, message):
    if condition:
        print("ok:", message)
    else:
        print("FAIL:", message)
        failures.append(message)
    return condition


def git(*args, cwd=None):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org")
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def wait_for(what, predicate, timeout=60.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Master:
    def __init__(self, tmp, config):
        self.tmp, self.config = tmp, config
        self.process = None
        self.web = self.worker_port = None

    def start(self, log_name):
        ports = os.path.join(self.tmp, "ports.json")
        if os.path.exists(ports):
            os.remove(ports)
        self.log = open(os.path.join(self.tmp, log_name), "w")
        self.process = subprocess.Popen(
            [MASTER, "start", "--config", self.config, "--listen", "127.0.0.1",
             "--data-dir", os.path.join(self.tmp, "master-data"), "--ports-file", ports,
             "--heartbeat", "2", "--shutdown-grace", "30"],
            cwd=self.tmp, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the master's ports file", lambda: os.path.exists(ports) or
                 self.process.poll() is not None, 30)
        if self.process.poll() is not None:
            raise AssertionError("ci-master exited: " + open(self.log.name).read())
        data = json.load(open(ports))
        self.web, self.worker_port = data["web_port"], data["worker_port"]

    def url(self, path):
        return f"http://127.0.0.1:{self.web}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=30) as response:
            body = response.read().decode()
            return json.loads(body) if "json" in response.headers["Content-Type"] else body

    def post(self, path, body=b"", headers=None, auth=None):
        request = urllib.request.Request(self.url(path), data=body, method="POST",
                                         headers=headers or {})
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def kill(self, sig):
        os.killpg(self.process.pid, sig)
        return self.process.wait(timeout=90)


class Worker:
    def __init__(self, tmp, master, index, name=None, token=None):
        self.name = name or f"remote/{index}"
        command = [WORKER, "start", "--master", f"127.0.0.1:{master.worker_port}", "--name",
                   self.name, "--work-dir", os.path.join(tmp, f"worker{index}")]
        env = dict(os.environ)
        if token:
            env["CI_WORKER_SECRET"] = token  # the environment, as a latent worker gets it
        else:
            secret_file = os.path.join(tmp, f"worker{index}.secret")
            with open(secret_file, "w") as out:
                out.write(PASSWORDS[index] + "\n")
            command += ["--secret-file", secret_file]
        self.log_path = os.path.join(tmp, f"worker{index}.log")
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(command, cwd=tmp, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        return self.process.wait(timeout=60)


def push_payload(origin_url, branch, before, after, message):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = {"id": after, "message": message, "timestamp": now,
              "author": {"name": "Dev", "email": "dev@example.org"},
              "added": [], "modified": ["test.sh"], "removed": []}
    return json.dumps({
        "ref": f"refs/heads/{branch}", "before": before, "after": after, "created": False,
        "deleted": False, "forced": False, "commits": [commit], "head_commit": commit,
        "repository": {"name": "demo", "full_name": "libci/demo", "clone_url": origin_url,
                       "html_url": origin_url, "url": origin_url},
        "pusher": {"name": "dev"}}).encode()


def send_webhook(master, body, event="push", secret=SECRET, delivery=None):
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return master.post("/change_hook/github", body, {
        "Content-Type": "application/json", "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature})


def main():
    tmp = tempfile.mkdtemp(prefix="libci-e2e-")
    origin = os.path.join(tmp, "origin.git")
    work = os.path.join(tmp, "src")
    release = os.path.join(tmp, "release")   # slow builds wait for this file
    marks = os.path.join(tmp, "lock-marks")  # steps under the lock write start/end here
    git("init", "-q", "--bare", "-b", "master", origin)
    git("clone", "-q", origin, work)
    with open(os.path.join(work, "test.sh"), "w") as out:
        out.write('echo "start $CI_BUILD_ID" >> "$MARKS"\n'
                  'echo "testing $(git rev-parse HEAD) (merge $CI_MERGE_COMMIT)"\n'
                  'if [ -e slow ]; then echo waiting; while [ ! -e "$RELEASE" ]; do sleep 0.1; done; fi\n'
                  'sleep 0.3\n'
                  'echo "end $CI_BUILD_ID" >> "$MARKS"\n'
                  'if [ -e broken ]; then echo "the tests fail: broken is here"; exit 3; fi\n'
                  'echo all tests passed\n')
    git("add", "test.sh", cwd=work)
    git("commit", "-qm", "tests", cwd=work)
    git("push", "-q", "origin", "HEAD:master", cwd=work)

    def branch(name, files, base="master"):
        git("checkout", "-q", "-B", name, f"origin/{base}", cwd=work)
        for path in files:
            with open(os.path.join(work, path), "w") as out:
                out.write(name + "\n")
            git("add", path, cwd=work)
        git("commit", "-qm", f"work on {name}", cwd=work)
        git("push", "-q", "-f", "origin", f"HEAD:{name}", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    # master moves on after the branches fork, so builds are real merges.
    config = os.path.join(tmp, "config.yml")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {tmp}/state.sqlite}}
auth: {{user: {AUTH[0]}, password: "{AUTH[1]}"}}
github: {{webhook_secret: "{SECRET}"}}
slaves:
  remote: {{passwords: ["{PASSWORDS[0]}", "{PASSWORDS[1]}"], max_builds: 2}}
  latent: {{ami: ci-image, slaves: 2}}
repositories:
  demo: {{url: "{origin}"}}
locks:
  one: {{max_count: 1}}
builders:
  tests:
    repository: demo
    workers: [remote]
    locks: [one]
    steps:
      - name: test
        run: "sh ./test.sh"
        env: {{RELEASE: "{release}", MARKS: "{marks}"}}
schedulers:
  branches: {{type: branch, repository: demo, builders: [tests], branches: ["feature/*"],
             tree_stable_timer: 1s}}
  force: {{type: force, builders: [tests]}}
""")
    master = Master(tmp, config)
    workers = []
    try:
        master.start("master.log")
        check(master.get("/healthz")["status"] == "ok", "/healthz answers ok")

        # Before any worker: bad input changes nothing.
        good_tip = branch("feature/good", ["good.txt"])
        body = push_payload(origin, "feature/good", "0" * 40, good_tip, "good")
        status, answer = send_webhook(master, body, secret="not-the-secret")
        check(status == 403, f"a bad signature is refused with 403 ({status}: {answer})")
        status, _ = master.post("/change_hook/github", body,
                                {"X-GitHub-Event": "push", "Content-Type": "application/json"})
        check(status == 403, "a webhook without a signature is refused")
        check(master.get("/api/v1/changes")["changes"] == [], "refused webhooks stored nothing")
        status, answer = send_webhook(master, b'{"zen": "hi", "hook_id": 1}', event="ping")
        check(status == 200 and answer == {"pong": True}, "ping answered")

        # master moves on: builds of feature branches are merges.
        git("checkout", "-q", "master", cwd=work)
        with open(os.path.join(work, "master.txt"), "w") as out:
            out.write("newer master\n")
        git("add", "master.txt", cwd=work)
        git("commit", "-qm", "master moves", cwd=work)
        git("push", "-q", "origin", "HEAD:master", cwd=work)
        master_tip = git("rev-parse", "HEAD", cwd=work)

        workers = [Worker(tmp, master, 0), Worker(tmp, master, 1)]
        wait_for("two connected workers", lambda: sum(
            w["connected"] for w in master.get("/api/v1/workers")["workers"]) == 2, 30)
        check(True, "two ci-workers connected and authenticated")

        delivery = str(uuid.uuid4())
        status, answer = send_webhook(master, body, delivery=delivery)
        check(status == 200 and len(answer.get("changes", [])) == 1,
              f"a signed push is accepted ({status}: {answer})")
        status, answer = send_webhook(master, body, delivery=delivery)
        check(status == 200 and answer.get("duplicate") is True,
              "the same delivery again is answered as a duplicate")
        check(len(master.get("/api/v1/changes")["changes"]) == 1, "and stored once")

        bad_tip = branch("feature/bad", ["broken"])
        send_webhook(master, push_payload(origin, "feature/bad", "0" * 40, bad_tip, "bad"))

        def finished_build(tip):
            for b in master.get("/api/v1/builds?limit=100")["builds"]:
                if b["branch_tip"] == tip and b["result"] not in ("running", "retry"):
                    return b
            return None

        good = wait_for("the good build", lambda: finished_build(good_tip))
        check(good["result"] == "success", f"feature/good: success ({good['result']})")
        # The oracle: git merge with the merge-forward identity and the tip's committer date.
        oracle = os.path.join(tmp, "oracle")
        git("clone", "-q", origin, oracle)
        git("checkout", "-q", "--detach", "origin/feature/good", cwd=oracle)
        date = git("log", "-1", "--format=%cd", "--date=raw", cwd=oracle)
        subprocess.run(["git", "merge", "-q", "--no-ff", "--no-stat", "-m", "Merge forward.",
                        "origin/master"], cwd=oracle, check=True,
                       env=dict(os.environ, GIT_AUTHOR_NAME="libci", GIT_AUTHOR_EMAIL="ci@localhost",
                                GIT_COMMITTER_NAME="libci", GIT_COMMITTER_EMAIL="ci@localhost",
                                GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date,
                                GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null"))
        expected = git("rev-parse", "HEAD", cwd=oracle)
        check(good["merge_commit"] == expected and good["target_tip"] == master_tip,
              f"built as a merge against master: {good['merge_commit']} == git's {expected}")
        log = master.get(f"/api/v1/builds/{good['id']}/steps/1/log")
        check(f"testing {expected}" in log and "all tests passed" in log,
              "the step ran in the merge commit and its log is stored")

        bad = wait_for("the bad build", lambda: finished_build(bad_tip))
        detail = master.get(f"/api/v1/builds/{bad['id']}")
        bad_log = master.get(f"/api/v1/builds/{bad['id']}/steps/1/log")
        check(bad["result"] == "failure" and detail["steps"][1]["exit_code"] == 3 and
              "the tests fail: broken is here" in bad_log,
              "feature/bad: failure, exit code 3, with its log")

        # A lock of 1: three branches at once run one after the other.
        open(marks, "w").close()
        tips = [branch(f"feature/lock-{i}", [f"lock{i}.txt"]) for i in range(3)]
        for i, tip in enumerate(tips):
            send_webhook(master, push_payload(origin, f"feature/lock-{i}", "0" * 40, tip, "lock"))
        for tip in tips:
            wait_for("the lock builds", lambda tip=tip: finished_build(tip))
        lines = open(marks).read().split()
        events = [lines[i] for i in range(0, len(lines), 2)]
        overlapping = any(events[i] == "start" and events[i + 1] == "start"
                          for i in range(len(events) - 1))
        check(len(events) == 6 and not overlapping,
              f"a lock of 1 never ran two builds at once: {' '.join(lines)}")

        # A worker killed mid-build: the request runs again on the other worker.
        slow_tip = branch("feature/slow", ["slow"])
        send_webhook(master, push_payload(origin, "feature/slow", "0" * 40, slow_tip, "slow"))

        def running_build(tip):
            for b in master.get("/api/v1/builds?running=1")["builds"]:
                if b["branch_tip"] == tip:
                    return b
            return None

        first = wait_for("the slow build to run", lambda: running_build(slow_tip))
        wait_for("its step to start", lambda: "waiting" in master.get(
            f"/api/v1/builds/{first['id']}/steps/1/log"))
        victim = next(w for w in workers if w.name == first["worker"])
        victim.kill()
        second = wait_for("the retried build", lambda: next(
            (b for b in master.get("/api/v1/builds?limit=100")["builds"]
             if b["request"] == first["request"] and b["id"] != first["id"]), None))
        check(master.get(f"/api/v1/builds/{first['id']}")["result"] == "retry",
              "the build of the killed worker ended as retry")
        check(second["worker"] != first["worker"],
              f"the request runs again on the other worker ({first['worker']} -> {second['worker']})")

        # Follow the retried build's log live: chunked text, and Server-Sent Events.
        wait_for("the retried step", lambda: "waiting" in master.get(
            f"/api/v1/builds/{second['id']}/steps/1/log"))
        plain = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
        plain.request("GET", f"/api/v1/builds/{second['id']}/steps/1/log?follow=1")
        plain_response = plain.getresponse()
        events_conn = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
        events_conn.request("GET", f"/api/v1/builds/{second['id']}/steps/1/events")
        events_response = events_conn.getresponse()
        check(plain_response.getheader("Transfer-Encoding") == "chunked",
              "a running step's log is sent chunked")
        open(release, "w").close()
        followed = plain_response.read().decode()
        sse = events_response.read().decode()
        check("waiting" in followed and "all tests passed" in followed,
              "following the log gives the output up to the step's end")
        check("event: log" in sse and "data: all tests passed" in sse and
              "event: end\ndata: success" in sse,
              "Server-Sent Events carry the log and the step's result")
        done = wait_for("the retried build to end", lambda: finished_build(slow_tip))
        check(done["result"] == "success" and done["id"] == second["id"],
              "the retried build succeeded")
        workers = [w for w in workers if w is not victim]

        # Forcing a build needs the config's auth.
        status, _ = master.post("/api/v1/builders/tests/force", b'{"branch": "feature/good"}')
        check(status == 401, f"force without credentials: 401 ({status})")
        status, answer = master.post("/api/v1/builders/tests/force",
                                     b'{"branch": "feature/good", "reason": "e2e"}', auth=AUTH)
        check(status == 202 and len(answer["requests"]) == 1, f"force with auth: 202 ({answer})")
        forced = answer["requests"][0]
        wait_for("the forced build", lambda: any(
            b["request"] == forced and b["result"] == "success"
            for b in master.get("/api/v1/builds?limit=100")["builds"]))
        metrics = master.get("/metrics")
        check('ci_builds_finished_total{builder="tests",result="success"}' in metrics and
              'ci_builds_finished_total{builder="tests",result="retry"} 1' in metrics and
              "ci_build_duration_seconds_bucket" in metrics,
              "/metrics counts results and durations")

        # Latent workers: a one-time token, then a secret that changes at every login.
        status, answer = master.post("/api/v1/workers/tokens", b'{"class": "latent"}')
        check(status == 401, f"a token needs the config's auth ({status})")
        status, answer = master.post("/api/v1/workers/tokens", b'{"class": "remote"}', auth=AUTH)
        check(status == 400 and "not an EC2 worker class" in answer["error"],
              "no tokens for static classes")
        status, issued = master.post("/api/v1/workers/tokens", b'{"class": "latent"}', auth=AUTH)
        check(status == 201 and issued["name"].startswith("latent/") and len(issued["token"]) == 64,
              f"a one-time token for a latent worker: {issued.get('name')}")

        def connected(name):
            return any(w["name"] == name and w["connected"]
                       for w in master.get("/api/v1/workers")["workers"])

        latent = Worker(tmp, master, 5, name=issued["name"], token=issued["token"])
        wait_for("the latent worker", lambda: connected(issued["name"]), 30)
        check(True, "the latent worker logged in with its token")
        again = Worker(tmp, master, 6, name=issued["name"], token=issued["token"])
        code = again.process.wait(timeout=30)
        check(code == 1 and "refused" in open(again.log_path).read(),
              f"the same token a second time is refused (exit {code})")
        # Silence it past three heartbeats: the master drops it; awake, it logs in again with
        # the secret its welcome gave it (the token is spent).
        os.killpg(latent.process.pid, signal.SIGSTOP)
        wait_for("the master to drop the silent worker", lambda: not connected(issued["name"]), 30)
        os.killpg(latent.process.pid, signal.SIGCONT)
        wait_for("the latent worker to log in again", lambda: connected(issued["name"]), 30)
        check(open(latent.log_path).read().count("connected to the master") == 2,
              "after being dropped, the latent worker logged in again with its next secret")
        latent.kill()
        logs = "".join(open(os.path.join(tmp, n)).read() for n in os.listdir(tmp)
                       if n.endswith(".log"))
        check(issued["token"] not in logs and PASSWORDS[0] not in logs and SECRET not in logs,
              "no log shows a token, a password or the webhook secret")

        # kill -9 with a build running and requests waiting.
        os.remove(release)
        slow2 = branch("feature/slow", ["slow", "again.txt"])
        send_webhook(master, push_payload(origin, "feature/slow", slow_tip, slow2, "slow again"))
        interrupted = wait_for("a running build", lambda: running_build(slow2))
        wait_for("its step", lambda: "waiting" in master.get(
            f"/api/v1/builds/{interrupted['id']}/steps/1/log"))
        waiting_tips = [branch(f"feature/queued-{i}", [f"q{i}.txt"]) for i in range(2)]
        for i, tip in enumerate(waiting_tips):
            send_webhook(master, push_payload(origin, f"feature/queued-{i}", "0" * 40, tip, "q"))
        # The lock holds them back: both wait as pending requests.
        wait_for("two pending requests", lambda: len(
            master.get("/api/v1/buildrequests?state=pending")["buildrequests"]) == 2, 30)
        master.kill(signal.SIGKILL)
        check(True, "the master was killed with -9 while a build ran and two requests waited")
        open(release, "w").close()
        master.start("master-restarted.log")
        pending = master.get("/api/v1/buildrequests?state=pending")["buildrequests"]
        check(len(pending) >= 2, f"after the restart the requests are still there ({len(pending)})")
        check(master.get(f"/api/v1/builds/{interrupted['id']}")["result"] == "retry",
              "the build the master lost ended as retry")
        # The surviving worker reconnects by itself (its connection broke), to the new port.
        for w in workers:
            w.kill(signal.SIGTERM)
        workers = [Worker(tmp, master, 0), Worker(tmp, master, 1)]
        for tip in waiting_tips + [slow2]:
            b = wait_for("the requests after the restart", lambda tip=tip: finished_build(tip), 90)
            check(b["result"] == "success", f"a request from before the kill ran: {b['result']}")

        # SIGTERM lets a running build finish.
        os.remove(release)
        slow3 = branch("feature/slow", ["slow", "third.txt"])
        send_webhook(master, push_payload(origin, "feature/slow", slow2, slow3, "slow 3"))
        last = wait_for("a running build", lambda: running_build(slow3))
        wait_for("its step", lambda: "waiting" in master.get(
            f"/api/v1/builds/{last['id']}/steps/1/log"))
        os.killpg(master.process.pid, signal.SIGTERM)
        time.sleep(1)
        check(master.process.poll() is None, "on SIGTERM the master waits for the running build")
        open(release, "w").close()
        code = master.process.wait(timeout=60)
        check(code == 0, f"then exits 0 ({code})")
        master.start("master-final.log")
        check(master.get(f"/api/v1/builds/{last['id']}")["result"] == "success",
              "the build that was running at SIGTERM finished and was stored")
    except Exception as error:  # noqa: BLE001 - report and fail
        failures.append(repr(error))
        print("FAIL:", repr(error))
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".log"):
                print(f"--- {name} (last lines)")
                print("".join(open(os.path.join(tmp, name)).readlines()[-30:]))
    finally:
        for w in workers:
            w.kill()
        if master.process and master.process.poll() is None:
            master.kill(signal.SIGKILL)
        subprocess.run(["rm", "-rf", tmp])
    print(f"{len(failures)} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
