#!/usr/bin/env python3
"""Artifact upload through the worker connection against scp over loopback (issue 16).

    bench/artifacts/upload_bench.py [BUILD_DIR] [--mb 200] [--rounds 3]

In one run, on this machine: a ci-master and a ci-worker (TLS 1.3, the master's self-signed
certificate pinned, as deployed) run a build whose upload step sends one file of MB megabytes of
random bytes; then `scp` sends the same file to the real OpenSSH sshd (Debian's openssh-server,
started unprivileged on a port the kernel picks, one `sshd -i` per connection:
tests/support/git_ssh_server.py) on 127.0.0.1, with `scp -O` (the SCP protocol: that sshd has
no SFTP subsystem configured). Each is timed ROUNDS times, the best kept.
The upload's time is from the master's log: from its UploadBegin ("upload ... of N files") to
the file stored (its SHA-256 checked, fsync'd, renamed) — so it includes the master's checks,
which scp does not do; the worker's own SHA-256 pass before it sends is timed separately (the
step's log) and left out. Prints both throughputs, the ratio (target: >= 60% of scp's) and the
master's CPU seconds (user + system, from /proc) per uploaded GB. It prints numbers; it does not
assert. About a minute.
"""

import argparse
import datetime
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time

TARGET_RATIO = 0.60
HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def log_time(line):
    """The timestamp at the start of a ci-master log line."""
    match = re.match(r"\[?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?)", line)
    return datetime.datetime.fromisoformat(match.group(1).replace(" ", "T")).timestamp()


def upload_rounds(case, harness, path, size, rounds):
    config = f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite,
              max_upload_size: 100GiB}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  remote: {{passwords: ["{case.passwords[0]}"]}}
builders:
  upload:
    workers: [remote]
    steps:
      - {{name: copy, run: "cp {path} payload.bin"}}
      - {{name: upload, upload: {{from: payload.bin, to: payload}}}}
schedulers:
  force: {{type: force, builders: [upload]}}
"""
    master = case.start_master(case.write_config(config))
    case.start_workers(master, 1)
    times, cpus = [], []
    for round_number in range(rounds):
        before = cpu_seconds(master.process.pid)
        status, answer = master.post("/api/v1/builders/upload/force", b"{}", auth=case.auth)
        assert status == 202, (status, answer)
        request = answer["requests"][0]
        build = harness.wait_for("the upload build", lambda: next(
            (b for b in master.builds(f"request={request}") if b["result"] != "running"), None),
            120)
        assert build["result"] == "success", build
        cpus.append(cpu_seconds(master.process.pid) - before)
        log = open(os.path.join(case.tmp, "master-1.log")).read().splitlines()
        begin = next(l for l in log if f"build {build['id']} step 2: upload \"payload\" of" in l)
        end = next(l for l in log if f"build {build['id']} step 2: upload \"payload\" stored" in l)
        times.append(log_time(end) - log_time(begin))
        print(f"  worker connection, round {round_number + 1}: {times[-1]:.2f} s, master CPU "
              f"{cpus[-1]:.2f} s", flush=True)
        shutil.rmtree(os.path.join(master.data_dir(), "results"), ignore_errors=True)
    return min(times), min(cpus)


def scp_rounds(case, harness, path, rounds):
    tmp = case.tmp
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/key"],
                   check=True)
    shutil.copy(f"{tmp}/key.pub", f"{tmp}/authorized_keys")
    out = open(f"{tmp}/sshd-server.log", "w")
    server = subprocess.Popen([sys.executable, f"{SOURCE}/tests/support/git_ssh_server.py",
                               f"{tmp}/sshd", f"{tmp}/authorized_keys"],
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        harness.wait_for("sshd", lambda: "host key:" in open(f"{tmp}/sshd-server.log").read(),
                         20)
        lines = open(f"{tmp}/sshd-server.log").read().splitlines()
        port = int(next(l for l in lines if l.startswith("listening on")).rsplit(":", 1)[1])
        host_key = next(l for l in lines if l.startswith("host key: "))[len("host key: "):]
        with open(f"{tmp}/known_hosts", "w") as known:
            known.write(f"[127.0.0.1]:{port} {host_key}\n")
        user = pwd.getpwuid(os.getuid()).pw_name
        times = []
        for round_number in range(rounds):
            target = f"{tmp}/scp-copy.bin"
            start = time.monotonic()
            subprocess.run(["scp", "-O", "-q", "-P", str(port), "-i", f"{tmp}/key",
                            "-o", f"UserKnownHostsFile={tmp}/known_hosts",
                            "-o", "BatchMode=yes", path, f"{user}@127.0.0.1:{target}"],
                           check=True)
            times.append(time.monotonic() - start)
            os.remove(target)
            print(f"  scp, round {round_number + 1}: {times[-1]:.2f} s", flush=True)
        return min(times)
    finally:
        server.kill()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", nargs="?", default="build")
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["LIBCI_BUILD_DIR"] = os.path.abspath(args.build_dir)
    sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
    import master_harness as harness  # noqa: E402 - needs LIBCI_BUILD_DIR

    if not (shutil.which("sshd") or os.path.exists("/usr/sbin/sshd")):
        print("error: sshd not found (Debian package openssh-server)")
        sys.exit(2)
    case = harness.Case("upload-bench")
    try:
        size = args.mb * 1000 * 1000
        path = os.path.join(case.tmp, "payload.bin")
        with open(path, "wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(1000 * 1000))
        print(f"{args.mb} MB of random bytes, best of {args.rounds} rounds each", flush=True)
        upload_s, cpu_s = upload_rounds(case, harness, path, size, args.rounds)
        scp_s = scp_rounds(case, harness, path, args.rounds)
        ours = size / upload_s / 1e6
        theirs = size / scp_s / 1e6
        ratio = ours / theirs
        print(f"worker connection: {ours:.0f} MB/s ({upload_s:.2f} s)")
        print(f"scp over loopback: {theirs:.0f} MB/s ({scp_s:.2f} s)")
        print(f"ratio: {ratio:.0%} of scp's throughput (target >= {TARGET_RATIO:.0%}): "
              f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}")
        print(f"master CPU: {cpu_s / (size / 1e9):.2f} s per uploaded GB "
              f"({cpu_s:.2f} s for {args.mb} MB, the whole build)")
    finally:
        case.close()


if __name__ == "__main__":
    main()
