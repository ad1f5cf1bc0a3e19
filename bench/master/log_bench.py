#!/usr/bin/env python3
"""Build-log ingest of ci-master, end to end through a real remote ci-worker, side by side with
`ci-worker run-step` of the same command and the bare command, in one run on 127.0.0.1.

    log_bench.py BUILD_DIR [--lines 5000000] [--rounds 5] [--state-dir /tmp]
                 [--healthz-interval-ms 5] [--webhook-interval-ms 20] [--keep]
                 [--worker-transport tls|plaintext]

One ci-master (SQLite state on disk in --state-dir) and one ci-worker connected to it, both real
processes. Two builders on the same repository and worker: `loud`, whose step is `seq N` (N =
--lines: 5,000,000 lines, 38.9 MB), and `quiet`, whose step is `true` (prints nothing). Each
round forces a quiet build, then a loud one (POST /api/v1/builders/NAME/force) and times each
from the force to the build's end (polling GET /api/v1/builds?request=R every 5 ms). The log
throughput is the loud log's size over (loud - quiet) median times: what the log costs on top
of dispatch, checkout and reporting. The loud log read back through the API is checked to be
the whole output, byte for byte.

Meanwhile two probe processes sample the master: GET /healthz every --healthz-interval-ms, and
a signed GitHub push webhook (a distinct branch each time, one in flight) every
--webhook-interval-ms; the samples that start during loud builds are reported (count, p50, p99,
max; webhooks: how many were acknowledged with 200). A branch scheduler with a 1 h tree-stable
timer watches those branches, so each webhook is a real durable write (its change and its wait)
that builds nothing during the run.

Side by side: `ci-worker run-step -- sh -c 'seq N'` into /dev/null (the worker's own process
runner, no master) and the bare `sh -c 'seq N'` into /dev/null, median of --rounds runs each.
Also printed: CPU seconds of ci-master and of ci-worker (with its steps) per build, which other
load on the machine disturbs less than the times, and ci-master's RSS.
Target (issue 13): a log throughput of at least 250 MB/s, GET /healthz p99 under 10 ms, webhooks
still acknowledged during the build. It prints the numbers and the ratio; it does not assert.

Measure a release build (`meson setup build-release --buildtype=release`) on an idle machine:
every process here wants a CPU at once, and on a shared one the times follow its load (printed).
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import ssl
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

# Helpers shared with the webhook benchmark beside this file.
from webhook_bench import fsync_probe, rss_mb, tail, write_secret

TARGET_MB_S = 250.0
TARGET_HEALTHZ_P99_MS = 10.0
AUTH = ("bench", secrets.token_hex(16))


def make_origin(root):
    """A bare repository with one commit on master; returns (its path, the commit)."""
    origin, work = os.path.join(root, "origin.git"), os.path.join(root, "src")
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.org",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.org")
    os.makedirs(work)
    with open(os.path.join(work, "README"), "w") as f:
        f.write("log bench\n")
    for command, cwd in ((["init", "-q", "--bare", "-b", "master", origin], None),
                         (["init", "-q", "-b", "master"], work),
                         (["add", "README"], work),
                         (["commit", "-qm", "bench"], work),
                         (["push", "-q", origin, "HEAD:master"], work)):
        subprocess.run(["git", *command], cwd=cwd, env=env, check=True, capture_output=True)
    tip = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    return origin, tip


def percentile(values, fraction):
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))]


class Client:
    """One keep-alive HTTP connection to the master's web port."""

    def __init__(self, port):
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, ConnectionError):
                # The server closed an idle keep-alive connection: one new one.
                self.connection.close()
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def get_json(self, path):
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
        return json.loads(body)


def push_payload(origin, branch, after):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    commit = {"id": after, "message": "bench", "timestamp": now,
              "author": {"name": "Bench", "email": "bench@example.org"},
              "added": [], "modified": ["README"], "removed": []}
    return json.dumps({
        "ref": f"refs/heads/{branch}", "before": "0" * 40, "after": after, "created": True,
        "deleted": False, "forced": False, "commits": [commit], "head_commit": commit,
        "repository": {"name": "demo", "full_name": "bench/demo", "clone_url": origin,
                       "html_url": origin, "url": origin},
        "pusher": {"name": "bench"}}).encode()


def probe(kind, port, interval, stop, results, origin=None, secret=None, tip=None):
    """Samples the master until `stop` is set: (start time, latency s, HTTP status) each."""
    client = Client(port)
    samples = []
    count = 0
    next_at = time.monotonic()
    while not stop.is_set():
        if kind == "healthz":
            method, path, body, headers = "GET", "/healthz", None, {}
        else:
            body = push_payload(origin, f"webhook/{os.getpid()}-{count}", tip)
            signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            method, path = "POST", "/change_hook/github"
            headers = {"Content-Type": "application/json", "X-GitHub-Event": "push",
                       "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": signature}
        count += 1
        start = time.monotonic()
        try:
            status, _ = client.request(method, path, body, headers)
        except OSError:
            status = 0
        samples.append((start, time.monotonic() - start, status))
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()
    results.put((kind, samples))


def timed_build(client, builder, auth_header, poll_s=0.005):
    """Forces a build of `builder`; returns (seconds from the force to its end, build)."""
    start = time.monotonic()
    status, body = client.request("POST", f"/api/v1/builders/{builder}/force", b"{}",
                                  {"Content-Type": "application/json",
                                   "Authorization": auth_header})
    if status != 202:
        raise RuntimeError(f"force {builder}: {status} {body[:200]!r}")
    request = json.loads(body)["requests"][0]
    deadline = start + 300
    while time.monotonic() < deadline:
        builds = client.get_json(f"/api/v1/builds?request={request}&limit=5")["builds"]
        ended = [b for b in builds if b["result"] not in ("running", "retry")]
        if ended:
            return time.monotonic() - start, ended[0]
        time.sleep(poll_s)
    raise RuntimeError(f"build of {builder} (request {request}) did not end within 300 s")


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU seconds of a process and its threads (children that ended are counted
    by the kernel in its cutime, which is added too)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in fields[11:15]) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def time_command(command, rounds):
    """Median wall seconds of `command` with its output into /dev/null."""
    times = []
    for _ in range(rounds):
        start = time.monotonic()
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        times.append(time.monotonic() - start)
    return statistics.median(times), times


def describe_samples(name, samples, unit_target=None):
    latencies = [s[1] * 1000 for s in samples]
    ok = sum(1 for s in samples if s[2] == 200)
    if not latencies:
        return f"{name}: no samples"
    text = (f"{name}: {len(latencies)} sent, {ok} answered 200; p50 "
            f"{percentile(latencies, 0.5):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
            f"max {max(latencies):.2f} ms")
    if unit_target:
        text += f" (target p99 < {unit_target:g} ms)"
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--state-dir", default="/tmp",
                        help="where ci-master keeps its SQLite state (default /tmp, on disk)")
    parser.add_argument("--healthz-interval-ms", type=float, default=5)
    parser.add_argument("--webhook-interval-ms", type=float, default=20,
                        help="0: send no webhooks")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--worker-transport", choices=["tls", "plaintext"], default="tls",
                        help="the worker port: TLS 1.3 (the default; the worker pins the "
                             "master's self-signed certificate) or plaintext (buildmaster.tls: "
                             "false, ci-worker --insecure); run both to compare")
    args = parser.parse_args()

    build_dir = os.path.abspath(args.build_dir)
    master_tool = os.path.join(build_dir, "tools", "ci-master", "ci-master")
    worker_tool = os.path.join(build_dir, "tools", "ci-worker", "ci-worker")
    for tool in (master_tool, worker_tool):
        if not os.access(tool, os.X_OK):
            sys.exit(f"error: {tool} not built (ninja -C {args.build_dir} "
                     f"{os.path.relpath(tool, build_dir)})")
    command = f"seq {args.lines}"
    expected = subprocess.run(["sh", "-c", command], stdout=subprocess.PIPE, check=True).stdout
    size_mb = len(expected) / 1e6

    root = tempfile.mkdtemp(prefix="libci-log-bench-", dir=args.state_dir)
    processes = []
    probes = []
    stop_probes = multiprocessing.Event()
    try:
        origin, tip = make_origin(root)

        webhook_secret = secrets.token_hex(20)
        password = secrets.token_hex(16)
        config = os.path.join(root, "config.yml")
        write_secret(config, f"""# ci-master for the log benchmark (written by bench/master/log_bench.py).
buildmaster: {{host: 127.0.0.1, web_port: 0, worker_port: 0, state: {root}/state.sqlite,
              tls: {"true" if args.worker_transport == "tls" else "false"}}}
auth: {{user: {AUTH[0]}, password: "{AUTH[1]}"}}
github: {{webhook_secret: "{webhook_secret}"}}
slaves:
    remote: {{passwords: ["{password}"], max_builds: 1}}
repositories:
    demo: {{url: "{origin}", default_branch: master}}
builders:
    loud:
        repository: demo
        workers: [remote]
        steps: [{{name: print, run: "{command}"}}]
    quiet:
        repository: demo
        workers: [remote]
        steps: [{{name: print, run: "true"}}]
schedulers:
    force: {{type: force, builders: [loud, quiet]}}
    webhooks: {{type: branch, repository: demo, builders: [quiet], branches: ["webhook/*"],
               tree_stable_timer: 1h, max_wait: 2h}}
""")
        secret_file = os.path.join(root, "worker.secret")
        write_secret(secret_file, password + "\n")
        ports_file = os.path.join(root, "ports.json")
        master_log = os.path.join(root, "master.log")
        worker_log = os.path.join(root, "worker.log")
        with open(master_log, "w") as log:
            master = subprocess.Popen(
                [master_tool, "start", "--config", config, "--listen", "127.0.0.1",
                 "--data-dir", root, "--ports-file", ports_file],
                cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(master)
        deadline = time.monotonic() + 60
        while not os.path.exists(ports_file):
            if master.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ci-master did not start:\n" + tail(master_log))
            time.sleep(0.05)
        time.sleep(0.1)  # the file is written whole, but give it a moment
        with open(ports_file) as f:
            ports = json.load(f)
        web_port, worker_port = ports["web_port"], ports["worker_port"]
        if args.worker_transport == "tls":
            pem = open(os.path.join(root, "tls", "cert.pem")).read()
            trust = ["--fingerprint",
                     "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()]
        else:
            trust = ["--insecure"]
        with open(worker_log, "w") as log:
            worker = subprocess.Popen(
                [worker_tool, "start", "--master", f"127.0.0.1:{worker_port}", "--name",
                 "remote/0", "--secret-file", secret_file, "--work-dir",
                 os.path.join(root, "worker")] + trust,
                cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(worker)
        client = Client(web_port)
        while not any(w["connected"] for w in client.get_json("/api/v1/workers")["workers"]):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ci-worker did not connect:\n" + tail(worker_log))
            time.sleep(0.05)
        auth_header = "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()

        print(f"== build log ingest: step `{command}` ({len(expected):,} bytes, {size_mb:.1f} MB) "
              f"through a remote ci-worker over {args.worker_transport}; state in {args.state_dir} (fdatasync of 4 KiB "
              f"{fsync_probe(root):.2f} ms); {args.rounds} rounds; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        # Warm up: the worker's first build clones the repository.
        timed_build(client, "quiet", auth_header)
        rss_before = rss_mb(master.pid)

        results = multiprocessing.Queue()
        probes = [
            multiprocessing.Process(target=probe, args=(
                "healthz", web_port, args.healthz_interval_ms / 1000, stop_probes, results)),
        ]
        if args.webhook_interval_ms > 0:
            probes.append(multiprocessing.Process(target=probe, args=(
                "webhook", web_port, args.webhook_interval_ms / 1000, stop_probes, results,
                origin, webhook_secret, tip)))
        for p in probes:
            p.start()
        time.sleep(0.5)
        times = {"quiet": [], "loud": []}
        windows = {"quiet": [], "loud": []}
        cpu = {"quiet": [], "loud": []}
        rss_after = []  # after each loud build, before its log is read back
        rss_rounds = []  # at the end of each round (its log read back, 0.3 s later)
        for round_number in range(args.rounds):
            for builder in ("quiet", "loud"):
                start = time.monotonic()
                before = (cpu_seconds(master.pid), cpu_seconds(worker.pid))
                seconds, build = timed_build(client, builder, auth_header)
                windows[builder].append((start, time.monotonic()))
                after = (cpu_seconds(master.pid), cpu_seconds(worker.pid))
                cpu[builder].append((after[0] - before[0], after[1] - before[1]))
                times[builder].append(seconds)
                if build["result"] != "success":
                    raise RuntimeError(f"build {build['id']} of {builder}: {build['result']}")
                if builder == "loud":
                    rss_after.append(rss_mb(master.pid))
                    status, log = client.request("GET", f"/api/v1/builds/{build['id']}/steps/1/log")
                    # The step's log is the output with the runner's header and end lines.
                    whole = status == 200 and expected in log
                    print(f"round {round_number + 1}: quiet {times['quiet'][-1]:.3f} s, loud "
                          f"{seconds:.3f} s; log read back: {len(log):,} bytes, "
                          f"{'whole' if whole else 'INCOMPLETE'}", flush=True)
                    if not whole:
                        raise RuntimeError(f"the log of build {build['id']} is incomplete")
                time.sleep(0.3)
            rss_rounds.append(rss_mb(master.pid))
        stop_probes.set()
        samples = {}
        for _ in probes:
            kind, got = results.get(timeout=60)
            samples[kind] = got
        for p in probes:
            p.join(10)

        def during(kind, builder):
            return [s for s in samples.get(kind, [])
                    if any(a <= s[0] <= b for a, b in windows[builder])]

        quiet = statistics.median(times["quiet"])
        loud = statistics.median(times["loud"])
        log_seconds = loud - quiet
        throughput = size_mb / log_seconds if log_seconds > 0 else float("inf")
        run_step, _ = time_command([worker_tool, "run-step", "--", "sh", "-c", command],
                                   args.rounds)
        bare, _ = time_command(["sh", "-c", command], args.rounds)

        print(f"\n== summary (medians; load average now {os.getloadavg()[0]:.1f})")
        print(f"quiet build (step `true`), force to finished: {quiet:.3f} s")
        print(f"loud build (step `{command}`), force to finished: {loud:.3f} s")
        print(f"log throughput end to end: {size_mb:.1f} MB in {log_seconds:.3f} s = "
              f"{throughput:.1f} MB/s; target >= {TARGET_MB_S:.0f} MB/s: ratio "
              f"{throughput / TARGET_MB_S:.2f}")
        for builder in ("quiet", "loud"):
            print(f"CPU per {builder} build: ci-master "
                  f"{statistics.median(c[0] for c in cpu[builder]):.3f} s, ci-worker with its "
                  f"steps {statistics.median(c[1] for c in cpu[builder]):.3f} s")
        print(f"ci-master RSS: {rss_before:.1f} MB before the rounds; after each loud build (before "
              f"its log is read back): {', '.join(f'{r:.1f}' for r in rss_after)} MB; at the end "
              f"of each round: {', '.join(f'{r:.1f}' for r in rss_rounds)} MB")
        print(describe_samples("GET /healthz during loud builds", during("healthz", "loud"),
                               TARGET_HEALTHZ_P99_MS))
        print(describe_samples("GET /healthz during quiet builds", during("healthz", "quiet")))
        print(describe_samples("webhooks during loud builds", during("webhook", "loud")))
        print(describe_samples("webhooks during quiet builds", during("webhook", "quiet")))
        print(f"side by side: ci-worker run-step: {run_step:.3f} s = {size_mb / run_step:.1f} MB/s;"
              f" bare command: {bare:.3f} s = {size_mb / bare:.1f} MB/s (into /dev/null)")
        print(f"end to end / run-step: {throughput / (size_mb / run_step):.2f}")
        return 0
    finally:
        stop_probes.set()
        for p in probes:
            p.join(5)
            if p.is_alive():
                p.terminate()
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
