#!/usr/bin/env python3
"""Idle workers over TLS against plaintext on ci-master's worker port (issue 17).

    bench/master/worker_tls_bench.py [BUILD_DIR] [--workers 1000]

For each transport (TLS 1.3 with the self-signed certificate ci-master creates, then
`buildmaster.tls: false`): start ci-master, connect N idle workers (BUILD_DIR/bench/webhook_load,
which pins the certificate and binds its proofs to the TLS exporter as ci-worker does), and print
the time until all N were welcomed with the handshakes per second, ci-master's RSS with all N
connected, then kill -9 the master, start it again on the same port and time the reconnection
storm (how many TLS sessions were resumed from the tickets of the first master). Then the ratios
TLS/plaintext. Targets: RSS <= 120 MB with 1,000 TLS workers; all connected within 5 s.
It prints numbers; it does not assert. About a minute.
"""

import argparse
import hashlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time

TARGET_RSS_MB = 120
TARGET_CONNECT_S = 5


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fingerprint(pem_path):
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class Master:
    def __init__(self, tool, root, passwords, tls):
        self.tool, self.root, self.tls = tool, root, tls
        self.passwords = passwords
        self.worker_port = 0
        self.process = None
        self.starts = 0

    def start(self):
        self.starts += 1
        config = os.path.join(self.root, "config.yml")
        write_private(config, f"""
buildmaster: {{web_port: 0, worker_port: {self.worker_port}, state: {self.root}/state.sqlite,
              tls: {"true" if self.tls else "false"},
              limits: {{worker_connections_per_address: 2048}}}}  # every worker is on 127.0.0.1
slaves:
  bench: {{passwords: [{", ".join(f'"{p}"' for p in self.passwords)}]}}
""")
        ports = os.path.join(self.root, "ports.json")
        if os.path.exists(ports):
            os.remove(ports)
        log = open(os.path.join(self.root, f"master-{self.starts}.log"), "w")
        self.process = subprocess.Popen(
            [self.tool, "start", "--config", config, "--listen", "127.0.0.1", "--data-dir",
             self.root, "--ports-file", ports, "--heartbeat", "30"],
            cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while not os.path.exists(ports):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ci-master did not start (see {log.name})")
            time.sleep(0.02)
        time.sleep(0.05)
        self.worker_port = json.load(open(ports))["worker_port"]

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def read_event(load, what, timeout=120):
    line = load.stdout.readline()
    event = json.loads(line) if line.strip() else {}
    if event.get("event") != "welcomed":
        raise RuntimeError(f"{what}: not all workers were welcomed: {line.strip()} "
                           f"{load.stderr.read() if load.stderr else ''}")
    return event


def run(build_dir, tls, count, scratch):
    root = tempfile.mkdtemp(prefix="tls-" if tls else "plain-", dir=scratch)
    passwords = [secrets.token_hex(16) for _ in range(count)]
    secret_file = os.path.join(root, "passwords")
    write_private(secret_file, "\n".join(passwords) + "\n")
    master = Master(os.path.join(build_dir, "tools", "ci-master", "ci-master"), root,
                    passwords, tls)
    master.start()
    idle_rss = rss_mb(master.process.pid)
    command = [os.path.join(build_dir, "bench", "webhook_load"), "--workers", str(count),
               "--worker-port", str(master.worker_port), "--worker-secret-file", secret_file,
               "--worker-class", "bench", "--timeout", "60", "--duration", "180"]
    if tls:
        command += ["--worker-fingerprint", fingerprint(os.path.join(root, "tls", "cert.pem"))]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        first = read_event(load, "first connection")
        time.sleep(2)
        connected_rss = rss_mb(master.process.pid)
        # The reconnection storm: the same port, a new process (tickets from the first one).
        master.kill()
        killed = time.monotonic()
        master.start()
        started = time.monotonic() - killed
        again = read_event(load, "after the restart")
        return {"first": first, "again": again, "idle_rss": idle_rss,
                "rss": connected_rss, "restart_s": started}
    finally:
        os.killpg(load.pid, signal.SIGTERM)
        load.wait(10)
        master.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default="build")
    parser.add_argument("--workers", type=int, default=1000)
    args = parser.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    print(f"== {args.workers} idle workers on ci-master's worker port; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="libci-worker-tls-bench-") as scratch:
        for tls in (True, False):
            name = "TLS 1.3" if tls else "plaintext"
            r = run(args.build_dir, tls, args.workers, scratch)
            results[tls] = r
            first, again = r["first"], r["again"]
            print(f"{name:9s}: all {args.workers} welcomed in {first['seconds']:.2f} s "
                  f"({first['handshakes_per_second']:.0f} handshakes/s, "
                  f"{first['full_handshakes']} full); RSS {r['idle_rss']:.1f} MB idle, "
                  f"{r['rss']:.1f} MB with the workers", flush=True)
            print(f"{'':9s}  after kill -9 and a restart ({r['restart_s']:.2f} s to listen): all "
                  f"back in {again['seconds']:.2f} s after the first drop, "
                  f"{again['resumed_handshakes']} sessions resumed, "
                  f"{again['full_handshakes']} full handshakes (the load retries after 1 s)",
                  flush=True)
    tls, plain = results[True], results[False]
    print(f"\nTLS/plaintext: RSS with workers {tls['rss'] / plain['rss']:.2f}x "
          f"({tls['rss'] - plain['rss']:+.1f} MB, {(tls['rss'] - plain['rss']) * 1024 / args.workers:.0f} "
          f"KiB a worker); time to connect all {tls['first']['seconds'] / plain['first']['seconds']:.2f}x")
    print(f"targets: RSS {tls['rss']:.1f} MB <= {TARGET_RSS_MB} MB: "
          f"{'met' if tls['rss'] <= TARGET_RSS_MB else 'MISSED'}; connected in "
          f"{tls['first']['seconds']:.2f} s <= {TARGET_CONNECT_S} s: "
          f"{'met' if tls['first']['seconds'] <= TARGET_CONNECT_S else 'MISSED'}; reconnection "
          f"resumed {tls['again']['resumed_handshakes']}/{args.workers} sessions")


if __name__ == "__main__":
    sys.exit(main())
