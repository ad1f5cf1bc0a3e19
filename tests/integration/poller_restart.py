#!/usr/bin/env python3
"""The ref poller across a restart, with real processes: a ci-master with a local worker polls a
bare repository every second (`poll_interval: 1s`); no webhook is sent and nothing is forced.

    poller_restart.py [--ssh]

- The first reading is the baseline (stored in the state database): it builds nothing.
- A push while the master runs builds.
- The master stops (SIGTERM, exit 0); while it is down, feature gets a push and a branch is
  deleted. Started again, the push builds with no other event (its change says "found by
  polling"); master, unchanged, and the deleted branch build nothing.
- A second repository whose URL leads nowhere is polled too: its failures are logged once per
  master run (a warning naming the URL), however often the poll is retried meanwhile (debug).

With --ssh the repository is reached over SSH (the real sshd, tests/support/git_ssh_server.py):
the master's key (CI_GIT_SSH_KEY) authenticates the listing and the local worker's checkout, and
the host key comes from $HOME/.ssh/known_hosts. Without sshd that run is skipped (exit 77).
"""

import json
import os
import pwd
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = os.environ["LIBCI_BUILD_DIR"]
SOURCE = os.environ["LIBCI_SOURCE_DIR"]
MASTER = os.path.join(BUILD, "tools", "ci-master", "ci-master")
SSH_SERVER = os.path.join(SOURCE, "tests", "support", "git_ssh_server.py")

failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        failures.append(message)


def git(*args, cwd=None):
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
               GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org")
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def eventually(what, probe, seconds=60):
    """probe() until it returns something true (returned); AssertionError after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} after {seconds} s")


class PolledMaster:
    """ci-master on ports 0, its API, and the poller's baseline in its state database."""

    def __init__(self, tmp, config, env):
        self.tmp, self.config, self.env = tmp, config, env
        self.state = os.path.join(tmp, "state.sqlite")
        self.process, self.port, self.runs = None, None, 0

    def start(self):
        ports = os.path.join(self.tmp, "ports.json")
        if os.path.exists(ports):
            os.remove(ports)
        self.runs += 1
        self.log_path = os.path.join(self.tmp, f"master-{self.runs}.log")
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [MASTER, "start", "--config", self.config, "--listen", "127.0.0.1",
                 "--data-dir", os.path.join(self.tmp, "data"), "--ports-file", ports],
                cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        eventually("ports file", lambda: os.path.exists(ports) or self.process.poll() is not None)
        if self.process.poll() is not None:
            raise AssertionError("ci-master exited: " + self.log())
        with open(ports) as f:
            self.port = json.load(f)["web_port"]

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1{path}",
                                    timeout=30) as response:
            return json.loads(response.read())

    def builds(self):
        return self.get("/builds?limit=100")["builds"]

    def finished_build(self, tip):
        def probe():
            done = [b for b in self.builds() if b["branch_tip"] == tip and b["result"] != "running"]
            return done[0] if done else None
        return eventually(f"finished build of {tip}", probe)

    def baseline(self):
        """The refs the poller stored for `app`, or None."""
        if not os.path.exists(self.state):
            return None
        db = sqlite3.connect(f"file:{self.state}?mode=ro", uri=True, timeout=10)
        try:
            row = db.execute("SELECT refs FROM polled_refs WHERE repository = 'app'").fetchone()
        except sqlite3.OperationalError:
            return None  # not created yet
        finally:
            db.close()
        return json.loads(row[0]) if row else None

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=90)


def ssh_remote(tmp, origin):
    """Serves `origin` over SSH; returns (url, environment for the master) or exits 77."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.access(sshd, os.X_OK) or not shutil.which("ssh-keygen"):
        print("SKIP: sshd or ssh-keygen not found (Debian: openssh-server): polling over SSH "
              "not tested")
        sys.exit(77)
    key = os.path.join(tmp, "master_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    server_log = open(os.path.join(tmp, "ssh_server.out"), "w")
    server = subprocess.Popen(["python3", SSH_SERVER, os.path.join(tmp, "sshd"), key + ".pub"],
                              stdout=server_log, stderr=subprocess.STDOUT)

    def announced():
        text = open(server_log.name).read()
        port = re.search(r"^listening on 127\.0\.0\.1:(\d+)$", text, re.M)
        host_key = re.search(r"^host key: (.+)$", text, re.M)
        return (port.group(1), host_key.group(1)) if port and host_key else None
    port, host_key = eventually("SSH server", announced, 30)
    home = os.path.join(tmp, "home")
    os.makedirs(os.path.join(home, ".ssh"))
    with open(os.path.join(home, ".ssh", "known_hosts"), "w") as f:
        f.write(f"[127.0.0.1]:{port} {host_key}\n")
    env = dict(os.environ, HOME=home, CI_GIT_SSH_KEY=key)
    env.pop("SSH_AUTH_SOCK", None)
    user = pwd.getpwuid(os.getuid()).pw_name
    return f"ssh://{user}@127.0.0.1:{port}{origin}", env, server


def main():
    over_ssh = "--ssh" in sys.argv[1:]
    tmp = tempfile.mkdtemp(prefix="libci-poller-")
    origin = os.path.join(tmp, "origin.git")
    work = os.path.join(tmp, "work")
    git("init", "-q", "--bare", "-b", "master", origin)
    git("clone", "-q", origin, work)
    with open(os.path.join(work, "test.sh"), "w") as f:
        f.write('echo "testing $(git rev-parse HEAD)"\n')
    git("add", "test.sh", cwd=work)
    git("commit", "-qm", "tests", cwd=work)
    git("push", "-q", "origin", "HEAD:master", "HEAD:feature", "HEAD:gone", cwd=work)
    master_tip = git("rev-parse", "HEAD", cwd=work)

    def push_feature(text):
        git("checkout", "-q", "-B", "feature", "origin/feature", cwd=work)
        with open(os.path.join(work, "feature.txt"), "a") as f:
            f.write(text + "\n")
        git("add", "feature.txt", cwd=work)
        git("commit", "-qm", text, cwd=work)
        git("push", "-q", "origin", "HEAD:feature", cwd=work)
        return git("rev-parse", "HEAD", cwd=work)

    server = None
    url, env = origin, dict(os.environ)
    if over_ssh:
        url, env, server = ssh_remote(tmp, origin)
    config = os.path.join(tmp, "config.yml")
    with open(config, "w") as f:
        f.write(f"""
buildmaster: {{host: localhost, web_port: 0, worker_port: 0, state: {tmp}/state.sqlite}}
slaves: {{local: {{local: true}}}}
repositories:
    app: {{url: "{url}", poll_interval: 1s}}
    broken: {{url: "{tmp}/missing.git", poll_interval: 1s}}
builders:
    tests:
        repository: app
        workers: [local]
        merge_target: none
        steps: [{{name: test, run: ["/bin/sh", "./test.sh"]}}]
schedulers:
    branches: {{type: branch, repository: app, builders: [tests], branches: ["*"],
                tree_stable_timer: 0s}}
""")
    env["CI_LOG_LEVEL"] = "debug"
    master = PolledMaster(tmp, config, env)
    try:
        master.start()
        first = eventually("baseline stored", master.baseline, 30)
        check(first.get("refs/heads/master") == master_tip and "refs/heads/gone" in first,
              f"the first reading is stored as the baseline: {sorted(first)}")
        check(master.builds() == [] and master.get("/buildrequests")["buildrequests"] == [],
              "the first reading builds nothing")

        running_push = push_feature("pushed while the master runs")
        build = master.finished_build(running_push)
        check(build["result"] == "success", f"a push while the master runs builds: {build}")

        check(master.stop() == 0, "ci-master exits 0 on SIGTERM")
        down_push = push_feature("pushed while the master is down")
        git("push", "-q", "origin", ":gone", cwd=work)

        master.start()
        build = master.finished_build(down_push)
        check(build["result"] == "success" and build["branch"] == "feature",
              f"after the restart, the push made while the master was down builds: {build}")
        changes = master.get("/changes?limit=50")["changes"]
        change = [c for c in changes if c["revision"] == down_push]
        check(len(change) == 1 and change[0]["comments"] == "found by polling",
              f"its change was found by polling, nothing else: {change}")
        tips = sorted(b["branch_tip"] for b in master.builds())
        check(tips == sorted([running_push, down_push]),
              f"master (unchanged) and the deleted branch built nothing: {tips}")
        def saved():
            refs = master.baseline()
            return refs if refs and "refs/heads/gone" not in refs else None
        refs = eventually("new baseline", saved, 30)
        check(refs.get("refs/heads/feature") == down_push,
              "the new baseline has feature's new tip and no deleted branch")
        log = master.log()
        check("poll app" not in log, "no poll errors in the master's log")
        eventually("a second failed poll of broken",
                   lambda: "poll broken: failed again" in master.log(), 30)
        warnings = [line for line in master.log().splitlines()
                    if " warning poll broken: " in line]
        check(len(warnings) == 1 and f"{tmp}/missing.git does not exist" in warnings[0],
              f"an unreachable repository is logged once, naming its URL: {warnings}")
        if over_ssh:
            sshd_log = open(os.path.join(tmp, "sshd", "sshd.log")).read()
            check("Accepted publickey" in sshd_log, "the master logged in with its SSH key")
        check(master.stop() == 0, "ci-master exits 0 on SIGTERM again")
    except AssertionError as error:  # a wait that timed out
        check(False, str(error))
    finally:
        if master.process and master.process.poll() is None:
            master.process.kill()
        if server:
            server.kill()
        if failures:
            for run in range(1, master.runs + 1):
                print(f"--- master-{run}.log")
                print(open(os.path.join(tmp, f"master-{run}.log")).read())
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
