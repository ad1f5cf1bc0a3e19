#!/usr/bin/env python3
"""Webhook ingest of ci-master against Debian's Buildbot 3.7 master (its GitHub change hook),
side by side in one run, on 127.0.0.1.

    webhook_bench.py BUILD_DIR [--seconds S] [--buildbot-seconds S] [--concurrency 1,4,16,64]
                     [--workers 1000] [--rounds N] [--state-dir /tmp] [--only buildbot|ours]
                     [--no-pin] [--keep]

Both masters get the same setup: one repository, one builder with one no-op step, a branch
scheduler watching every branch with a 5 s tree-stable timer (Buildbot: AnyBranchScheduler),
the state in SQLite on disk, the webhook secret in a file (never on a command line) and strict
signature checking. bench/webhook_load (BUILD_DIR/bench/webhook_load) sends distinct signed GitHub
pushes over 1,000 branches on keep-alive connections, one request in flight each.

Measured, for 1, 4, 16 and 64 concurrent senders, alternating between the masters: accepted
webhooks/s and p99 latency, with each side's accepted count checked against the changes it
stored. Also: idle RSS of both masters; RSS of ci-master with 1,000 idle workers connected.
Each run line also gives the fdatasync time of a 4 KiB write in the state directory just
before it: both masters commit to SQLite, and on a VM disk with an IOPS limit (this one: fast
until a burst budget runs out, then 4 ms per fdatasync) that, not the master, sets the pace;
--state-dir /dev/shm compares them without the disk.
Targets (the issue): ours >= 100x Buildbot's accepted webhooks/s; idle RSS <= 1/5 of
Buildbot's; <= 100 MB with 1,000 workers. It prints the numbers and ratios; it does not assert.

With two cores, the load generator is pinned to CPU 0 and both masters to CPU 1 (taskset), so
each master gets one whole core and neither competes with its load. During each run the other
master is stopped (SIGSTOP, then SIGCONT), and between runs the script waits until both masters
are quiet (their tree-stable timers have fired and the builds they queue are written), so neither
side's background work lands in the other's measurement.

After the runs, the round-trip floor: the same client POSTing the same pushes, one at a time, to
ci-master's /healthz (which reads them and answers 405: it takes only GET and HEAD), and what 100x
Buildbot's 1-sender rate leaves per webhook within it.
"""
import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO_URL = "https://github.com/ClusterHQ/flocker.git"
HTML_URL = REPO_URL[:-len(".git")]
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_RATIO = 100.0
TARGET_IDLE_FRACTION = 1 / 5
TARGET_WORKERS_MB = 100.0

STUB_WWW_INIT = """# Stand-in for Buildbot's web UI package, which Debian does not ship: the master refuses a
# www section without it. The change hooks do not need the UI.
from buildbot.www.plugin import Application

ep = Application(__name__, "stub")
"""

BUILDBOT_CFG = """# Buildbot 3.7 master for the webhook benchmark (written by bench/master/webhook_bench.py).
import os

from buildbot.plugins import schedulers, steps, util, worker

basedir = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(basedir, "webhook_secret")) as f:
    webhook_secret = f.read().strip()
with open(os.path.join(basedir, "worker_password")) as f:
    worker_password = f.read().strip()

c = BuildmasterConfig = {{}}
c["title"] = "webhook bench"
c["buildbotURL"] = "http://127.0.0.1:{web_port}/"
c["buildbotNetUsageData"] = None  # no phone-home: this machine reaches no such server
c["workers"] = [worker.Worker("bench-worker", worker_password)]
c["protocols"] = {{"pb": {{"port": "tcp:{pb_port}:interface=127.0.0.1"}}}}
c["change_source"] = []  # changes come from the GitHub hook only
c["schedulers"] = [
    schedulers.AnyBranchScheduler(
        name="branches",
        change_filter=util.ChangeFilter(repository="{html_url}"),
        treeStableTimer=5,
        builderNames=["bench"]),
]
factory = util.BuildFactory()
factory.addStep(steps.ShellCommand(name="noop", command=["true"]))
c["builders"] = [util.BuilderConfig(name="bench", workernames=["bench-worker"],
                                    factory=factory)]
c["www"] = {{
    "port": "tcp:{web_port}:interface=127.0.0.1",
    "plugins": {{}},
    "change_hook_dialects": {{"github": {{"secret": webhook_secret, "strict": True}}}},
}}
c["db"] = {{"db_url": "sqlite:///state.sqlite"}}
# As ci-master's collapse_requests default (false). Buildbot's default (true) compares every new
# build request with all the pending ones: with no worker connected that slows the timers to
# about one buildset a second after a few hundred changes.
c["collapseRequests"] = False
"""

OURS_CFG = """# ci-master for the webhook benchmark (written by bench/master/webhook_bench.py).
buildmaster:
    host: 127.0.0.1
    web_port: 0
    worker_port: 0
    state: {state}
    limits: {{worker_connections_per_address: 2048}}  # the 1,000 workers are all on 127.0.0.1
github:
    webhook_secret: "{secret}"
slaves:
    bench:
        passwords: [{passwords}]
        max_builds: 1
repositories:
    flocker:
        url: {repo_url}
builders:
    bench:
        repository: flocker
        workers: [bench]
        steps:
            - name: noop
              run: "true"
schedulers:
    branches:
        type: branch
        repository: flocker
        builders: [bench]
        branches: ["*"]
        tree_stable_timer: 5s
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def process_tree(pid):
    """pid and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def rss_mb(pid):
    """VmRSS of pid and its descendants, in MB (10^6 bytes)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total / 1e6


def cpu_seconds(pid):
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, IndexError):
            pass
    return total


def wait_quiet(pids, at_least, at_most=120.0):
    """Waits at_least seconds, then until the processes use under 2% CPU over a second."""
    start = time.monotonic()
    time.sleep(at_least)
    while time.monotonic() - start < at_most:
        before = sum(cpu_seconds(p) for p in pids)
        time.sleep(1.0)
        if sum(cpu_seconds(p) for p in pids) - before < 0.02:
            break
    return time.monotonic() - start


@contextlib.contextmanager
def frozen(pids):
    """Stops every process of these process trees (SIGSTOP) for the duration; then resumes them."""
    stopped = [p for pid in pids for p in process_tree(pid)]
    for p in stopped:
        try:
            os.kill(p, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    try:
        yield
    finally:
        for p in stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def fsync_probe(directory, count=20):
    """Median ms of writing 4 KiB and fdatasync-ing it in `directory`: both masters commit to a
    SQLite file there, so their numbers move with this (on a shared VM disk, by 10x or more)."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    times = []
    try:
        for i in range(count):
            start = time.perf_counter()
            os.pwrite(fd, b"x" * 4096, i * 4096)
            os.fdatasync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    return sorted(times)[len(times) // 2] * 1000


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


def count_rows(db, table):
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        connection.close()


def start(command, log_path, cwd=None, env=None, pin=None):
    log = open(log_path, "ab")
    if pin:
        command = ["taskset", "-c", pin, *command]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    return process


def stop(process, timeout=20):
    """Stops a process started by start() and its whole process group."""
    if process is None or process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


def tail(path, lines=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


class Buildbot:
    name = "buildbot"

    def __init__(self, root, secret_file, pin):
        self.dir = os.path.join(root, "buildbot")
        self.pin = pin
        self.process = None
        self.web_port = free_port()
        self.url = f"http://127.0.0.1:{self.web_port}/change_hook/github"
        self.db = os.path.join(self.dir, "state.sqlite")
        self.log = os.path.join(self.dir, "twistd.log")
        if shutil.which("buildbot") is None:
            print("buildbot not found: apt-get install -y buildbot", flush=True)
            subprocess.run(["apt-get", "install", "-y", "buildbot"], check=True,
                           stdout=subprocess.DEVNULL)
        # The stub web UI plugin (see /work/shared/TOOLCHAIN.md): Debian ships no buildbot_www.
        stub = os.path.join(root, "buildbot-www-stub")
        package = os.path.join(stub, "buildbot_www")
        os.makedirs(os.path.join(package, "static"))
        with open(os.path.join(package, "__init__.py"), "w") as f:
            f.write(STUB_WWW_INIT)
        with open(os.path.join(package, "VERSION"), "w") as f:
            f.write("3.7.0\n")
        with open(os.path.join(package, "static", "index.html"), "w") as f:
            f.write("<html><body>stub</body></html>\n")
        info = os.path.join(stub, "buildbot_www-3.7.0.dist-info")
        os.makedirs(info)
        with open(os.path.join(info, "METADATA"), "w") as f:
            f.write("Metadata-Version: 2.1\nName: buildbot-www\nVersion: 3.7.0\n")
        with open(os.path.join(info, "entry_points.txt"), "w") as f:
            f.write("[buildbot.www]\nbase = buildbot_www:ep\n")
        self.env = dict(os.environ, PYTHONPATH=stub)
        self.env.pop("PYTHONHOME", None)
        subprocess.run(["buildbot", "create-master", "--quiet", "--db", "sqlite:///state.sqlite",
                        self.dir], env=self.env, check=True, stdout=subprocess.DEVNULL)
        shutil.copy(secret_file, os.path.join(self.dir, "webhook_secret"))
        os.chmod(os.path.join(self.dir, "webhook_secret"), 0o600)
        write_secret(os.path.join(self.dir, "worker_password"), secrets.token_hex(16))
        with open(os.path.join(self.dir, "master.cfg"), "w") as f:
            f.write(BUILDBOT_CFG.format(web_port=self.web_port, pb_port=free_port(),
                                        html_url=HTML_URL))
        check = subprocess.run(["buildbot", "checkconfig", self.dir], env=self.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"buildbot checkconfig failed:\n{check.stdout}")

    def start(self):
        # --nodaemon: buildbot execs twistd, so the child is the master itself.
        self.process = start(["buildbot", "start", "--nodaemon", self.dir],
                             os.path.join(self.dir, "stdout.log"), env=self.env, pin=self.pin)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("buildbot exited at start:\n" + tail(self.log))
            try:
                # A GET of the hook with no event is refused (400) by a hook that is up.
                http_get(self.url, timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("buildbot's hook did not answer within 120 s:\n" + tail(self.log))

    def changes(self):
        return count_rows(self.db, "changes")

    def queued(self):
        return {t: count_rows(self.db, t) for t in ("buildsets", "buildrequests")}


class Ours:
    name = "ci-master"

    def __init__(self, root, build_dir, secret, passwords, pin, tag="ours"):
        self.tool = os.path.join(build_dir, "tools", "ci-master", "ci-master")
        self.dir = os.path.join(root, tag)
        os.makedirs(self.dir)
        self.pin = pin
        self.process = None
        self.db = os.path.join(self.dir, "state.sqlite")
        self.config = os.path.join(self.dir, "config.yml")
        self.ports_file = os.path.join(self.dir, "ports.json")
        self.log = os.path.join(self.dir, "master.log")
        help_text = subprocess.run([self.tool, "start", "--help"], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True).stdout
        self.listen_option = "--listen" in help_text
        write_secret(self.config, OURS_CFG.format(
            state=self.db, secret=secret, repo_url=REPO_URL,
            passwords=", ".join(f'"{p}"' for p in passwords)))
        check = subprocess.run([self.tool, "check-config", self.config], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"ci-master check-config failed:\n{check.stdout}")

    def start(self):
        command = [self.tool, "start", "--config", self.config, "--ports-file", self.ports_file]
        if self.listen_option:
            command += ["--listen", "127.0.0.1"]  # not every address (the default 0.0.0.0)
        self.process = start(command, self.log, cwd=self.dir, pin=self.pin)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("ci-master exited at start:\n" + tail(self.log))
            try:
                with open(self.ports_file) as f:
                    ports = json.load(f)
                self.web_port, self.worker_port = ports["web_port"], ports["worker_port"]
                break
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        else:
            raise RuntimeError(f"ci-master wrote no {self.ports_file} within 60 s:\n"
                               + tail(self.log))
        self.url = f"http://127.0.0.1:{self.web_port}/change_hook/github"
        while time.monotonic() < deadline:
            try:
                http_get(f"http://127.0.0.1:{self.web_port}/api/v1/changes?limit=1", timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("ci-master's web port did not answer:\n" + tail(self.log))

    def changes(self):
        try:
            return count_rows(self.db, "changes")
        except sqlite3.Error:
            # The schema is ci-master's own: fall back to the newest change id of the REST API.
            _, body = http_get(f"http://127.0.0.1:{self.web_port}/api/v1/changes?limit=1")
            listed = json.loads(body).get("changes", [])
            return listed[0]["id"] if listed else 0


def ci_master_has_start(build_dir):
    tool = os.path.join(build_dir, "tools", "ci-master", "ci-master")
    if not os.access(tool, os.X_OK):
        return False, f"{tool} not built (ninja -C {build_dir} tools/ci-master/ci-master)"
    probe = subprocess.run([tool, "start", "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    if probe.returncode != 0 or "--ports-file" not in probe.stdout:
        first = (probe.stdout.strip().splitlines() or [""])[0]
        return False, (f"`ci-master start --config FILE --ports-file FILE` is not available in "
                       f"{tool} yet ({first})")
    return True, ""


def run_load(load, url, concurrency, seconds, secret_file, pin, extra=()):
    command = [load, "--url", url, "--concurrency", str(concurrency), "--duration", str(seconds),
               "--secret-file", secret_file, "--repo-url", REPO_URL, *extra]
    if pin:
        command = ["taskset", "-c", pin, *command]
    out = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=seconds + 180)
    if out.returncode != 0:
        raise RuntimeError(f"webhook_load failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def describe(result):
    statuses = ", ".join(f"{k}: {v}" for k, v in result["statuses"].items())
    text = (f"{result['accepted_per_s']:9.1f} accepted/s  p50 {result['p50_ms']:8.2f} ms  "
            f"p99 {result['p99_ms']:8.2f} ms  ({result['accepted']} accepted; HTTP {statuses}")
    if result["errors"]:
        text += f", {result['errors']} errors: {result['first_error']}"
    if result["first_rejection"]:
        text += f", first rejection: {result['first_rejection'][:120]!r}"
    return text + ")"


def fingerprint(pem_path):
    """`sha256:HEX` of a PEM certificate (Python's ssl and hashlib)."""
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def workers_phase(ours, load, passwords_file, count, pin):
    """Connects `count` idle workers to ours; returns (RSS after all are welcomed, after 5 s)."""
    command = [load, "--workers", str(count), "--worker-port", str(ours.worker_port),
               "--worker-secret-file", passwords_file, "--worker-class", "bench",
               "--timeout", "60", "--duration", "300",  # ends by itself if never all welcomed
               # TLS, as ci-worker: the self-signed certificate ci-master made in its dir.
               "--worker-fingerprint", fingerprint(os.path.join(ours.dir, "tls", "cert.pem"))]
    if pin:
        command = ["taskset", "-c", pin, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        line = process.stdout.readline()  # the "welcomed" line, or "done" on failure
        event = json.loads(line) if line.strip() else {}
        if event.get("event") != "welcomed":
            stop(process, 5)
            rest = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the workers were not all welcomed: {line.strip()} {rest.strip()} "
                               f"{process.stderr.read() if process.stderr else ''}")
        time.sleep(1)
        welcomed_rss = rss_mb(ours.process.pid)
        time.sleep(5)
        later_rss = rss_mb(ours.process.pid)
        os.killpg(process.pid, signal.SIGTERM)
        done = json.loads(process.stdout.readline() or "{}")
        process.wait(10)
        return event, done, welcomed_rss, later_rss
    finally:
        stop(process, 5)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--seconds", type=float, default=5, help="per run against ci-master")
    parser.add_argument("--buildbot-seconds", type=float, default=10,
                        help="per run against Buildbot")
    parser.add_argument("--concurrency", default="1,4,16,64")
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--only", choices=["buildbot", "ours"])
    parser.add_argument("--rounds", type=int, default=1,
                        help="sweeps over the concurrencies; the summary takes each side's best")
    parser.add_argument("--state-dir", default="/tmp",
                        help="where both masters keep their SQLite state (default /tmp, on disk; "
                             "/dev/shm takes the disk out of the comparison)")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    build_dir = os.path.abspath(args.build_dir)
    load = os.path.join(build_dir, "bench", "webhook_load")
    if not os.access(load, os.X_OK):
        sys.exit(f"error: {load} not built (ninja -C {args.build_dir} bench/webhook_load)")
    run_ours = args.only != "buildbot"
    run_buildbot = args.only != "ours"
    if run_ours:
        ok, why = ci_master_has_start(build_dir)
        if not ok:
            sys.exit(f"error: {why}\n(--only buildbot measures Buildbot alone)")
    levels = [int(c) for c in args.concurrency.split(",")]
    two_cores = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") and not args.no_pin
    load_pin, master_pin = ("0", "1") if two_cores else (None, None)

    # Every process that can raise the limit needs ~1,000 descriptors for the workers.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, 65536):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))

    where = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    # The masters' databases go on disk (--state-dir) as in production; the rest in memory.
    root = tempfile.mkdtemp(prefix="libci-webhook-bench-", dir=args.state_dir)
    scratch = tempfile.mkdtemp(prefix="libci-webhook-bench-", dir=where)
    masters = []
    try:
        secret = secrets.token_hex(20)
        secret_file = os.path.join(scratch, "webhook_secret")
        write_secret(secret_file, secret + "\n")
        passwords = [secrets.token_hex(16) for _ in range(max(args.workers, 1))]
        passwords_file = os.path.join(scratch, "worker_passwords")
        write_secret(passwords_file, "\n".join(passwords) + "\n")

        ours = buildbot = None
        if run_buildbot:
            buildbot = Buildbot(root, secret_file, master_pin)
            masters.append(buildbot)
        if run_ours:
            ours = Ours(root, build_dir, secret, passwords, master_pin)
            masters.append(ours)
        if buildbot:
            version = subprocess.run(["buildbot", "--version"], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True).stdout
            print("peer: " + ", ".join(version.strip().splitlines()))
        print(f"pinning: load generator on CPU {load_pin}, masters on CPU {master_pin}"
              if master_pin else "pinning: none")
        for master in masters:
            master.start()
            print(f"{master.name} up (pid {master.process.pid}, hook {master.url})", flush=True)

        # Idle RSS: both started, a few seconds idle.
        time.sleep(5)
        idle = {m.name: rss_mb(m.process.pid) for m in masters}
        print("\n== idle RSS (VmRSS, process tree, after 5 s idle)")
        for name, mb in idle.items():
            print(f"{name:10s} {mb:7.1f} MB")
        if ours and buildbot:
            print(f"ci-master/buildbot {idle['ci-master'] / idle['buildbot']:.3f} "
                  f"(target <= {TARGET_IDLE_FRACTION:.2f})")

        if ours and args.workers > 0:
            event, done, welcomed_rss, later_rss = workers_phase(ours, load, passwords_file,
                                                                 args.workers, load_pin)
            print(f"\n== ci-master with {args.workers} idle workers (welcomed in "
                  f"{event['seconds']:.2f} s, heartbeat every {event['heartbeat_seconds']} s)")
            print(f"RSS {welcomed_rss:.1f} MB when all were welcomed, {later_rss:.1f} MB 5 s "
                  f"later (target <= {TARGET_WORKERS_MB:.0f} MB); "
                  f"workers: {done.get('disconnects')} disconnects, {done.get('refused')} "
                  f"refused, {done.get('builds')} builds offered")
            wait_quiet([ours.process.pid], 1)

        print(f"\n== webhooks: accepted/s and latency, ci-master {args.seconds:g} s and Buildbot "
              f"{args.buildbot_seconds:g} s per run, distinct signed pushes over 1,000 branches")
        rows = {c: {"concurrency": c} for c in levels}
        for concurrency in [c for _ in range(max(args.rounds, 1)) for c in levels]:
            row = rows[concurrency]
            for master in masters:
                seconds = args.seconds if master is ours else args.buildbot_seconds
                before = master.changes()
                disk_ms = fsync_probe(root)
                # The other master is stopped (SIGSTOP) during the run: both share CPU 1, and
                # Buildbot's late work (timers firing, its request distributor going through a
                # long queue) otherwise ran into our runs even after it had looked quiet.
                with frozen([m.process.pid for m in masters if m is not master]):
                    result = run_load(load, master.url, concurrency, seconds, secret_file,
                                      load_pin)
                # Wait for the tree-stable timers (5 s) and the work they start, so this
                # side's background work stays out of the other's next measurement.
                quiet = wait_quiet([m.process.pid for m in masters], 6)
                stored = master.changes() - before
                result["stored"] = stored
                best = row.get(master.name)
                if best is None or result["accepted_per_s"] > best["accepted_per_s"]:
                    row[master.name] = result
                check = "ok" if stored == result["accepted"] else "MISMATCH"
                print(f"c={concurrency:<3d} {master.name:10s} {describe(result)}; "
                      f"{stored} changes stored: {check}; disk fdatasync {disk_ms:.2f} ms "
                      f"before; quiet after {quiet:.0f} s", flush=True)

        print("\n== summary" + (f" (best of {args.rounds} rounds)" if args.rounds > 1 else ""))
        print(f"{'senders':>7s} | {'ours acc/s':>10s} {'ours p99':>9s} | {'bb acc/s':>9s} "
              f"{'bb p99':>9s} | {'ours/bb':>8s}")
        for row in rows.values():
            o, b = row.get("ci-master"), row.get("buildbot")
            cells = [f"{row['concurrency']:7d}"]
            cells.append(f"{o['accepted_per_s']:10.1f} {o['p99_ms']:7.2f}ms" if o else
                         f"{'-':>10s} {'-':>9s}")
            cells.append(f"{b['accepted_per_s']:9.1f} {b['p99_ms']:7.1f}ms" if b else
                         f"{'-':>9s} {'-':>9s}")
            ratio = (o["accepted_per_s"] / b["accepted_per_s"]
                     if o and b and b["accepted_per_s"] > 0 else None)
            cells.append(f"{ratio:7.1f}x" if ratio else f"{'-':>8s}")
            print(" | ".join(cells))
        if ours and buildbot:
            print(f"target: ours >= {TARGET_RATIO:.0f}x Buildbot's accepted webhooks/s")
        if ours:
            # What one sender can reach at all on this machine: the same client sending the same
            # signed pushes to ci-master's /healthz, which reads them and answers 405 without
            # any work (no signature check, no parsing, nothing stored). At 1 sender a webhook
            # costs this round trip plus its own work.
            wait_quiet([m.process.pid for m in masters], 0)
            with frozen([m.process.pid for m in masters if m is not ours]):
                floor = run_load(load, f"http://127.0.0.1:{ours.web_port}/healthz", 1,
                                 args.seconds, secret_file, load_pin)
            print(f"round-trip floor, 1 sender (POST to /healthz, 405, nothing done): "
                  f"{floor['req_per_s']:.1f} requests/s, p50 {floor['p50_ms']:.3f} ms")
            bb1 = rows.get(1, {}).get("buildbot")
            if bb1 and bb1["accepted_per_s"] > 0:
                need = TARGET_RATIO * bb1["accepted_per_s"]
                per_webhook_us = 1e6 / need - 1e6 / floor["req_per_s"]
                print(f"  {TARGET_RATIO:.0f}x Buildbot at 1 sender is {need:.0f}/s: "
                      f"{need / floor['req_per_s'] * 100:.0f}% of the floor, leaving "
                      f"{per_webhook_us:.0f} us per webhook for checking, parsing and "
                      f"committing it")
        for master in masters:
            print(f"{master.name} RSS after the webhook runs: {rss_mb(master.process.pid):.1f} MB")
        if buildbot:
            print(f"buildbot queued after its timers: {buildbot.queued()}")
        if ours:
            try:
                _, body = http_get(f"http://127.0.0.1:{ours.web_port}/api/v1/changes?limit=1")
                newest = (json.loads(body).get("changes") or [{}])[0].get("id")
                print(f"ci-master GET /api/v1/changes?limit=1: newest id {newest}; "
                      f"state.sqlite changes: {ours.changes()}")
            except (OSError, ValueError) as error:
                print(f"ci-master GET /api/v1/changes?limit=1 failed: {error}")
        return 0
    finally:
        for master in masters:
            stop(master.process)
        if args.keep:
            print(f"kept {root} and {scratch}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
