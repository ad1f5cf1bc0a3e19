#!/usr/bin/env python3
"""The ref poller across a restart, with real processes: a ci-master with a local worker polls
the case's bare repository every second (`poll_interval: 1s`); no webhook is sent and nothing
is forced.

    poller_restart.py [--ssh]

- The first reading is the baseline (stored in the state database): it builds nothing.
- A push while the master runs builds.
- The master stops (SIGTERM, exit 0); while it is down, a branch gets a push and another is
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

import master_harness as harness

SSH_SERVER = os.path.join(os.environ["LIBCI_SOURCE_DIR"], "tests", "support",
                          "git_ssh_server.py")


def baseline(case):
    """The refs the poller stored for `demo` (ref -> commit id), or None."""
    path = os.path.join(case.tmp, "state.sqlite")
    if not os.path.exists(path):
        return None
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        row = db.execute("SELECT refs FROM polled_refs WHERE repository = 'demo'").fetchone()
    except sqlite3.OperationalError:
        return None  # the schema is not there yet
    finally:
        db.close()
    return json.loads(row[0]) if row else None


def serve_over_ssh(case):
    """Serves the case's origin over SSH; returns its URL and the master's environment (a HOME
    whose known_hosts holds the server's key, CI_GIT_SSH_KEY, no agent)."""
    key = os.path.join(case.tmp, "master_key")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    out = os.path.join(case.tmp, "ssh-server.out")
    server = subprocess.Popen(
        ["python3", SSH_SERVER, os.path.join(case.tmp, "sshd"), key + ".pub"],
        stdout=open(out, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    case.servers.append(server)

    def announced():
        text = open(out).read()
        port = re.search(r"^listening on 127\.0\.0\.1:(\d+)$", text, re.M)
        host_key = re.search(r"^host key: (.+)$", text, re.M)
        return (port.group(1), host_key.group(1)) if port and host_key else None
    port, host_key = harness.wait_for("the SSH server", announced, 30)
    home = os.path.join(case.tmp, "home")
    os.makedirs(os.path.join(home, ".ssh"))
    with open(os.path.join(home, ".ssh", "known_hosts"), "w") as known:
        known.write(f"[127.0.0.1]:{port} {host_key}\n")
    env = dict(os.environ, HOME=home, CI_GIT_SSH_KEY=key)
    env.pop("SSH_AUTH_SOCK", None)
    user = pwd.getpwuid(os.getuid()).pw_name
    return f"ssh://{user}@127.0.0.1:{port}{case.repo.origin}", env


def finished(master, tip):
    return harness.wait_for(f"the build of {tip} to finish", lambda: master.finished_build(tip))


def main(case, over_ssh):
    case.servers = []
    try:
        run_case(case, over_ssh)
    finally:
        for server in case.servers:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def run_case(case, over_ssh):
    repo = case.repo
    gone = repo.branch("gone", ["gone.txt"])
    master_tip = harness.git("rev-parse", "origin/master", cwd=repo.work)
    url, env = serve_over_ssh(case) if over_ssh else (repo.origin, dict(os.environ))
    env["CI_LOG_LEVEL"] = "debug"
    # The harness's usual config, with its repository polled (and a second one that cannot be)
    # and every branch scheduled, so that an unchanged master would show if it built.
    standard = case.standard_config(tree_stable_timer="0s", workers="local")
    listed = f'demo: {{url: "{repo.origin}"}}'
    everything = 'branches: ["feature/*"]'
    if listed not in standard or everything not in standard:
        raise AssertionError("master_harness.standard_config changed: adapt this case")
    config = case.write_config(standard.replace(
        listed, f'demo: {{url: "{url}", poll_interval: 1s}}\n'
                f'  broken: {{url: "{case.tmp}/missing.git", poll_interval: 1s}}').replace(
        everything, 'branches: ["*"]'))
    master = case.start_master(config, env)
    first = harness.wait_for("the first reading to be stored", lambda: baseline(case), 30)
    case.check(first.get("refs/heads/master") == master_tip and
               first.get("refs/heads/gone") == gone,
               f"the first reading is stored as the baseline: {sorted(first)}")
    case.check(master.builds() == [] and master.all_requests() == [],
               "the first reading builds nothing")

    running_push = repo.branch("feature", ["while-running.txt"])
    build = finished(master, running_push)
    case.check(build["result"] == "success", f"a push while the master runs builds: {build}")

    case.check(master.kill(signal.SIGTERM) == 0, "ci-master exits 0 on SIGTERM")
    down_push = repo.branch("feature", ["while-down.txt"])
    harness.git("push", "-q", "origin", ":gone", cwd=repo.work)

    master.start()
    build = finished(master, down_push)
    case.check(build["result"] == "success" and build["branch"] == "feature",
               f"after the restart, the push made while the master was down builds: {build}")
    change = [c for c in master.get("/api/v1/changes?limit=50")["changes"]
              if c["revision"] == down_push]
    case.check(len(change) == 1 and change[0]["comments"] == "found by polling",
               f"its change was found by polling (no other event): {change}")
    tips = sorted(b["branch_tip"] for b in master.builds())
    case.check(tips == sorted([running_push, down_push]),
               f"master (unchanged) and the deleted branch built nothing: {tips}")

    def new_baseline():
        refs = baseline(case)
        return refs if refs and "refs/heads/gone" not in refs else None
    refs = harness.wait_for("the new baseline", new_baseline)
    case.check(refs.get("refs/heads/feature") == down_push,
               "the new baseline has feature's new tip and no deleted branch")

    log_path = os.path.join(case.tmp, f"master-{master.starts}.log")

    def log():
        return open(log_path).read()
    case.check("poll demo" not in log(), "no poll of demo failed")
    harness.wait_for("a second failed poll of broken",
                     lambda: "poll broken: failed again" in log(), 30)
    warnings = [line for line in log().splitlines() if " warning poll broken: " in line]
    case.check(len(warnings) == 1 and f"{case.tmp}/missing.git does not exist" in warnings[0],
               f"an unreachable repository is logged once, naming its URL: {warnings}")
    if over_ssh:
        sshd_log = open(os.path.join(case.tmp, "sshd", "sshd.log")).read()
        case.check("Accepted publickey" in sshd_log, "the master logged in with its SSH key")
    case.check(master.kill(signal.SIGTERM) == 0, "ci-master exits 0 on SIGTERM again")


if __name__ == "__main__":
    over_ssh = "--ssh" in sys.argv[1:]
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if over_ssh and not (os.access(sshd, os.X_OK) and shutil.which("ssh-keygen")):
        print("SKIP: sshd or ssh-keygen not found (Debian: openssh-server): polling over SSH "
              "not tested")
        sys.exit(77)
    harness.run(lambda case: main(case, over_ssh))
