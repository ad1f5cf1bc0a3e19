#!/usr/bin/env python3
"""Two builds of one builder at once on one worker, each in its own work directory slot.

A real ci-master (one static worker class with max_builds 2, a builder `tests`) and one real
ci-worker on 127.0.0.1; then again with a local worker inside the master (local: true,
max_builds 2) instead. Two branches pushed (webhooks signed with Python's own hmac). The
builder's step waits, with a deadline, until both builds are inside it (marks in a shared file),
so the two run at the same time or the step fails; then it prints `git rev-parse HEAD` and its
work directory. Checked:
- both builds succeed, on the same worker, and overlapped;
- each log shows its own merge commit, equal to what `git merge --no-ff` with the merge-forward
  identity and date makes, and its own files;
- they ran in two slot directories, WORK_DIR/tests/0 and WORK_DIR/tests/1;
- a later build of the builder, alone, reuses slot 0.
Before slots, such builds shared WORK_DIR/tests and checked out over each other (issue 13).
"""

import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import ssl
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
PASSWORD = uuid.uuid4().hex

# Waits (at most 30 s) until two builds have marked their start, then shows what it tests.
STEP = ('echo "start $CI_BUILD_ID" >> "$MARKS"\n'
        'i=0\n'
        'while [ "$(grep -c start "$MARKS")" -lt "$EXPECTED" ]; do\n'
        '  i=$((i+1)); if [ $i -gt 300 ]; then echo "alone: no other build came"; exit 1; fi\n'
        '  sleep 0.1\n'
        'done\n'
        'echo "head $(git rev-parse HEAD)"\n'
        'echo "workdir $CI_WORKDIR"\n'
        'cat branch.txt\n'
        'echo "end $CI_BUILD_ID" >> "$MARKS"\n')

failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message)
    if not condition:
        failures.append(message)
    return condition


def git(*args, cwd=None, env=None):
    full = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
                GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
                GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org")
    full.update(env or {})
    done = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def fingerprint(tmp):
    """The pin of the worker port's self-signed certificate (Python's ssl and hashlib)."""
    pem = open(os.path.join(tmp, "master-data", "tls", "cert.pem")).read()
    return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def wait_for(what, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Master:
    def __init__(self, tmp, config):
        ports = os.path.join(tmp, "ports.json")
        self.log_path = os.path.join(tmp, "master.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [MASTER, "start", "--config", config, "--listen", "127.0.0.1",
                 "--data-dir", os.path.join(tmp, "master-data"), "--ports-file", ports,
                 "--heartbeat", "2", "--shutdown-grace", "10"],
                cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the master's ports file",
                 lambda: os.path.exists(ports) or self.process.poll() is not None, 30)
        if self.process.poll() is not None:
            raise AssertionError("ci-master exited: " + open(self.log_path).read())
        data = json.load(open(ports))
        self.web, self.worker_port = data["web_port"], data["worker_port"]

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web}{path}", timeout=30) as answer:
            body = answer.read().decode()
            return json.loads(body) if "json" in answer.headers["Content-Type"] else body

    def step_log(self, build_id, step=1):
        try:
            return self.get(f"/api/v1/builds/{build_id}/steps/{step}/log")
        except urllib.error.HTTPError as error:
            return f"(no log: HTTP {error.code})"

    def push(self, origin, branch, tip):
        commit = {"id": tip, "message": branch, "author": {"name": "Dev", "email": "d@e.org"},
                  "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                  "added": ["branch.txt"], "modified": [], "removed": []}
        body = json.dumps({
            "ref": f"refs/heads/{branch}", "before": "0" * 40, "after": tip, "created": True,
            "deleted": False, "forced": False, "commits": [commit], "head_commit": commit,
            "repository": {"name": "demo", "full_name": "libci/demo", "clone_url": origin,
                           "html_url": origin, "url": origin}}).encode()
        signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web}/change_hook/github", data=body, method="POST",
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push",
                     "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status

    def finished_build(self, branch):
        # By branch: a build whose checkout failed has no branch tip.
        for build in self.get("/api/v1/builds?limit=100")["builds"]:
            if build["branch"] == branch and build["result"] not in ("running", "retry"):
                return build
        return None

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)


def oracle_merge(tmp, origin, branch):
    """The merge commit the git CLI makes with merge-forward's identity, date and message."""
    clone = os.path.join(tmp, "oracle-" + branch.replace("/", "-"))
    git("clone", "-q", origin, clone)
    git("checkout", "-q", "--detach", f"origin/{branch}", cwd=clone)
    date = git("log", "-1", "--format=%cd", "--date=raw", cwd=clone)
    git("merge", "-q", "--no-ff", "--no-stat", "-m", "Merge forward.", "origin/master", cwd=clone,
        env={"GIT_AUTHOR_NAME": "libci", "GIT_AUTHOR_EMAIL": "ci@localhost",
             "GIT_COMMITTER_NAME": "libci", "GIT_COMMITTER_EMAIL": "ci@localhost",
             "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
    return git("rev-parse", "HEAD", cwd=clone)


def run_case(tmp, local):
    """Two branches of one builder at once on one worker: a ci-worker process (local=False) or
    a local worker inside the master (local=True), both with max_builds 2."""
    kind = "local" if local else "remote"
    worker_name = f"{kind}/0"
    origin = os.path.join(tmp, "origin.git")
    src = os.path.join(tmp, "src")
    marks = os.path.join(tmp, "marks")
    work_dir = os.path.join(tmp, "master-data", "work", "local-0") if local else \
        os.path.join(tmp, "worker")
    git("init", "-q", "--bare", "-b", "master", origin)
    git("clone", "-q", origin, src)
    with open(os.path.join(src, "test.sh"), "w") as out:
        out.write(STEP)
    with open(os.path.join(src, "branch.txt"), "w") as out:
        out.write("branch master\n")
    git("add", "-A", cwd=src)
    git("commit", "-qm", "base", cwd=src)
    git("push", "-q", "origin", "HEAD:master", cwd=src)

    def branch(name):
        git("checkout", "-q", "-B", name, "origin/master", cwd=src)
        with open(os.path.join(src, "branch.txt"), "w") as out:
            out.write(f"branch {name}\n")
        git("commit", "-qam", f"work on {name}", cwd=src)
        git("push", "-q", "origin", f"HEAD:{name}", cwd=src)
        return git("rev-parse", "HEAD", cwd=src)

    tips = {name: branch(name) for name in ("feature/one", "feature/two")}
    # master moves on after the branches fork, so that each build is a merge of its own.
    git("checkout", "-q", "master", cwd=src)
    with open(os.path.join(src, "master.txt"), "w") as out:
        out.write("newer master\n")
    git("add", "master.txt", cwd=src)
    git("commit", "-qm", "master moves", cwd=src)
    git("push", "-q", "origin", "HEAD:master", cwd=src)

    worker_class = "{local: true, max_builds: 2}" if local else \
        f'{{passwords: ["{PASSWORD}"], max_builds: 2}}'
    config = os.path.join(tmp, "config.yml")
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {tmp}/state.sqlite}}
github: {{webhook_secret: "{SECRET}"}}
slaves:
  {kind}: {worker_class}
repositories:
  demo: {{url: "{origin}"}}
builders:
  tests:
    repository: demo
    workers: [{kind}]
    steps:
      - name: test
        run: "sh ./test.sh"
        env: {{MARKS: "{marks}", EXPECTED: "2"}}
schedulers:
  branches: {{type: branch, repository: demo, builders: [tests], branches: ["feature/*"],
             tree_stable_timer: 1s}}
""")
    master = worker = None
    try:
        master = Master(tmp, config)
        if not local:
            secret_file = os.path.join(tmp, "worker.secret")
            with open(secret_file, "w") as out:
                out.write(PASSWORD + "\n")
            with open(os.path.join(tmp, "worker.log"), "w") as log:
                worker = subprocess.Popen(
                    [WORKER, "start", "--master", f"127.0.0.1:{master.worker_port}", "--name",
                     worker_name, "--secret-file", secret_file, "--work-dir", work_dir,
                     "--max-builds", "2", "--fingerprint", fingerprint(tmp)],
                    cwd=tmp, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for("the worker to connect", lambda: any(
            w["connected"] for w in master.get("/api/v1/workers")["workers"]), 30)

        open(marks, "w").close()
        for name, tip in tips.items():
            check(master.push(origin, name, tip) == 200, f"{kind}: push of {name} accepted")
        builds = {name: wait_for(f"the build of {name}",
                                 lambda name=name: master.finished_build(name), 90)
                  for name in tips}

        slots = set()
        for name, build in builds.items():
            log = master.step_log(build["id"])
            print(f"--- {kind}: {name}: build {build['id']}, {build['result']}\n{log}")
            label = f"{kind}: {name}"
            check(build["result"] == "success", f"{label}: success ({build['result']})")
            check(build["worker"] == worker_name,
                  f"{label}: ran on {worker_name} ({build['worker']})")
            expected = oracle_merge(tmp, origin, name)
            check(build["merge_commit"] == expected,
                  f"{label}: merge commit {build['merge_commit']} is git's {expected}")
            check(f"head {expected}\n" in log, f"{label}: its step saw its own merge commit")
            check(f"branch {name}\n" in log, f"{label}: its step saw its own branch's files")
            found = re.search(r"^workdir (.+)$", log, re.M)
            if check(found is not None, f"{label}: its step printed its work directory"):
                slots.add(found.group(1))
        check(builds["feature/one"]["merge_commit"] != builds["feature/two"]["merge_commit"],
              f"{kind}: the two builds have different merge commits")

        def slot(number):
            return os.path.join(work_dir, "tests", str(number))

        check(slots == {slot(0), slot(1)},
              f"{kind}: the two builds ran in slots 0 and 1 of {work_dir}/tests: {sorted(slots)}")
        lines = open(marks).read().split("\n")
        starts = [i for i, line in enumerate(lines) if line.startswith("start")]
        ends = [i for i, line in enumerate(lines) if line.startswith("end")]
        check(len(starts) == 2 and len(ends) == 2 and max(starts) < min(ends),
              f"{kind}: the two builds ran at the same time: {lines}")

        # Alone, a later build of the builder takes slot 0 again (its checkout is warm).
        with open(marks, "w") as out:
            out.write("start (a placeholder for the build that is not coming)\n")
        three = branch("feature/three")
        check(master.push(origin, "feature/three", three) == 200,
              f"{kind}: push of feature/three accepted")
        build = wait_for("the build of feature/three",
                         lambda: master.finished_build("feature/three"))
        log = master.step_log(build["id"])
        check(build["result"] == "success" and f"workdir {slot(0)}\n" in log,
              f"{kind}: a later build reuses slot 0 ({build['result']}): {log}")
    except (AssertionError, OSError, ValueError) as error:
        check(False, f"{kind}: {type(error).__name__}: {error}")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
        if master is not None:
            master.stop()


def main():
    root = tempfile.mkdtemp(prefix="libci-slots-")
    for local in (False, True):
        tmp = os.path.join(root, "local" if local else "remote")
        os.makedirs(tmp)
        before = len(failures)
        run_case(tmp, local)
        if len(failures) > before:
            for name in ("master.log", "worker.log"):
                path = os.path.join(tmp, name)
                if os.path.exists(path):
                    print(f"--- {path}\n" + "".join(open(path).readlines()[-40:]))
    if failures:
        print(f"{len(failures)} check(s) failed; kept {root}")
        return 1
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
