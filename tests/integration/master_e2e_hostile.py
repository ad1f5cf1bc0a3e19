#!/usr/bin/env python3
"""Hostile input against a real ci-master (issue 14, items 1-3, 7 and 8): bodies nested far too
deep on both ports, values of the wrong type, refs git would refuse, a build whose spec cannot be
sent, a worker that drops every build, invalid UTF-8, a 5,000-byte method, and floods (items 4-6:
connections, slow headers, large bodies, wrong passwords and signatures, cross-site requests,
huge names in the log). After each attack
the master must still run and answer /healthz; the attacks of items 1-3 store no change and no
request; builds that cannot run end `exception` instead of being retried forever;
/api/v1/changes stays valid UTF-8; /healthz takes GET and HEAD only.

A master that crashed is reported (FAIL) and started again, so that one run shows every attack."""

import json
import socket
import threading
import time
import uuid

import master_harness as harness

DEEP = 300_000  # levels of the worker line and webhook bodies (the numbers)
DEEP_FORCE = 1_000_000  # levels of the authenticated force body
DEEP_FORCE_FITS = 30_000  # levels of a force body within the API's 64 KiB


def deep(levels):
    return b"[" * levels + b"]" * levels


class Attacks:
    def __init__(self, case, master):
        self.case, self.master = case, master

    def survived(self, what):
        """Checks that the master still runs and answers /healthz; starts it again if not."""
        healthy = False
        if self.master.process.poll() is None:
            try:
                healthy = self.master.get("/healthz").get("status") == "ok"
            except OSError:
                healthy = False
        if not healthy:
            try:  # a master that crashed may still be writing its core
                self.master.process.wait(timeout=10)
            except harness.subprocess.TimeoutExpired:
                self.master.kill()
        self.case.check(healthy, f"{what}: the master is up and /healthz answers"
                        + ("" if healthy else f" (it exited with {self.master.process.returncode})"))
        if not healthy:
            self.master.start()

    def webhook(self, body, what, expect=400):
        try:
            status, answer = self.master.webhook(body)
        except OSError as error:  # the master died while answering
            status, answer = None, repr(error)
        self.case.check(status == expect, f"{what}: {expect} ({status}: {str(answer)[:200]})")
        self.survived(what)
        return answer

    def worker_line(self, line, what):
        """Sends `line` as the first line on the worker port (no hello), waits for the answer."""
        with harness.WorkerSocket(self.master.worker_port, self.master.fingerprint(),
                                  timeout=10) as s:
            s.recv(200)  # the challenge
            s.sendall(line)
            try:
                s.recv(200)  # the master closes the connection (or dies)
            except OSError:
                pass
        time.sleep(0.3)
        self.survived(what)


def push(case, ref, commits=None, extra=None, message="work"):
    """A push payload of the case's repository as a dict, for `ref`."""
    payload = json.loads(case.repo.push_payload("feature/x", harness.ZERO, "a" * 40, message))
    payload["ref"] = ref
    if commits is not None:
        payload["commits"] = commits
    payload.update(extra or {})
    return payload


def encoded(payload):
    return json.dumps(payload).encode()


class Lines:
    """Lines read from a harness.WorkerSocket (b"" at the end)."""

    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def readline(self):
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                line, self.buffer = self.buffer, b""
                return line
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line + b"\n"


class FakeWorker(threading.Thread):
    """A worker of class `fake` that authenticates, takes each build it is sent and drops the
    connection at once: the worker a build is lost on, again and again."""

    def __init__(self, master, name, password, connections):
        super().__init__(daemon=True)
        self.master, self.name, self.password = master, name, password
        self.connections = connections
        self.builds = []

    def run(self):
        for _ in range(self.connections):
            try:
                with harness.WorkerSocket(self.master.worker_port, self.master.fingerprint(),
                                          timeout=8) as s:
                    lines = Lines(s)
                    challenge = json.loads(lines.readline())
                    proof = harness.proof(self.password, challenge["nonce"], s)
                    s.sendall(json.dumps({"type": "hello", "name": self.name, "proof": proof,
                                          "max_builds": 1,
                                          "protocol": challenge["protocol"]}).encode() + b"\n")
                    welcome = json.loads(lines.readline())
                    if welcome.get("type") != "welcome":
                        return
                    message = json.loads(lines.readline())  # the build, or a timeout
                    if message.get("type") == "build":
                        self.builds.append(message["build"])
            except (OSError, ValueError):
                return  # no build came: the master gave up on the request
            time.sleep(0.2)


def config(case, webhook_secret=True, huge_step=0):
    fake_password = uuid.uuid4().hex
    case.secrets.append(fake_password)
    case.fake_password = fake_password
    text = case.standard_config()
    text = text.replace("buildmaster: {", "buildmaster: {max_retries: 2, ")
    text = text.replace("  local: {local: true}",
                        f'  local: {{local: true}}\n  fake: {{passwords: ["{fake_password}"]}}')
    if not webhook_secret:
        text = text.replace(f'github: {{webhook_secret: "{case.webhook_secret}"}}\n', "")
    huge_run = "x" * huge_step
    text = text.replace("schedulers:\n", f"""  flaky:
    repository: demo
    workers: [fake]
    steps: [{{name: test, run: "true"}}]
  huge:
    repository: demo
    workers: [remote]
    steps: [{{name: test, run: &huge "echo {huge_run}"}}, {{name: again, run: *huge}}]
schedulers:
""")
    text = text.replace("builders: [tests]}\n", "builders: [tests, flaky, huge]}\n")
    return case.write_config(text)


def nothing_stored(case, master, what):
    changes = master.get("/api/v1/changes")["changes"]
    requests = master.all_requests()
    case.check(changes == [] and requests == [],
               f"{what}: no change and no request stored ({len(changes)} changes, "
               f"{len(requests)} requests)")


def strict_changes(case, master):
    """GET /api/v1/changes decoded strictly: bytes as UTF-8 (errors: strict), then JSON."""
    with harness.urllib.request.urlopen(master.url("/api/v1/changes"), timeout=30) as response:
        raw = response.read()
    try:
        return json.loads(raw.decode("utf-8", errors="strict"))["changes"]
    except (UnicodeDecodeError, ValueError) as error:
        case.check(False, f"/api/v1/changes is valid UTF-8 JSON ({error})")
        return None


# Issue 14, item 4 and the suite's bounds. The master's RSS stays below RSS_BOUND while it is
# attacked (a generous bound: it idles near 30 MB, and the bodies it may hold are capped at 64
# MiB; the issue saw 1,088 MB before the caps). Under a sanitizer (ASan keeps freed memory in
# quarantine, up to 256 MB) the bound is SANITIZED_RSS_BOUND. /healthz, asked from another
# address than the attacks', answers every probe, its 99th percentile within HEALTHZ_P99 (the
# issue's 50 ms) and each within HEALTHZ_MAX (a loaded 2-core CI machine stalls now and then).
# These timed assertions live here, in the hostile end-to-end case, never in unit tests.
RSS_BOUND = 200 * 1024 * 1024
SANITIZED_RSS_BOUND = 1024 * 1024 * 1024
HEALTHZ_P99 = 0.050
HEALTHZ_MAX = 1.0
PROBE_ADDRESS = "127.0.0.2"  # the attacks come from 127.0.0.1 (and .3, .4): another client


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Probe(threading.Thread):
    """GET /healthz from PROBE_ADDRESS on a new connection every 20 ms, and the master's RSS
    after each, until stop(): each probe's time, the failed ones, the highest RSS."""

    def __init__(self, master):
        super().__init__(daemon=True)
        self.master = master
        self.latencies, self.failures, self.rss_max = [], [], 0
        self.stopping = threading.Event()

    def probe(self):
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.master.web), timeout=5,
                                          source_address=(PROBE_ADDRESS, 0)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(4096):
                    answer += chunk
            if not answer.startswith(b"HTTP/1.1 200"):
                self.failures.append(answer[:60])
        except OSError as error:
            self.failures.append(repr(error))
        self.latencies.append(time.monotonic() - started)

    def run(self):
        while not self.stopping.is_set():
            self.probe()
            try:
                self.rss_max = max(self.rss_max, rss_bytes(self.master.process.pid))
            except OSError:
                pass
            time.sleep(0.02)

    def stop(self):
        self.stopping.set()
        self.join(timeout=30)


def raw_request(master, data, source="127.0.0.1", timeout=10):
    """Sends `data` on a new connection and reads the answer until the master closes it."""
    with socket.create_connection(("127.0.0.1", master.web), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(data)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:
            pass
    return answer


def status_of(answer):
    return int(answer[9:12]) if answer.startswith(b"HTTP/1.1 ") else None


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def flood(case, master):
    """Item 4-6 attacks, each while Probe runs."""
    log_path = harness.os.path.join(case.tmp, f"master-{master.starts}.log")

    # Connections: 300 from one address; at most 128 are kept, the rest get 503 at once.
    sockets, refused = [], 0
    for _ in range(300):
        s = socket.create_connection(("127.0.0.1", master.web), timeout=5)
        sockets.append(s)
    for s in sockets:
        s.settimeout(0.2)
        try:
            if s.recv(64).startswith(b"HTTP/1.1 503"):
                refused += 1
        except OSError:
            pass  # kept open: waits for a request
    case.check(refused >= 300 - 128, f"300 connections from one address: {refused} got 503 "
               "(at least 172: 128 per address)")
    for s in sockets:
        s.close()

    # The worker port: 300 connections from one address; at most 256 are kept (waiting for a
    # TLS ClientHello), the rest are closed at once, before TLS, and logged once per 10 s with
    # a count. Closed again, they are released: a worker still gets its challenge.
    sockets, closed = [], 0
    for _ in range(300):
        sockets.append(socket.create_connection(("127.0.0.1", master.worker_port), timeout=5))
    time.sleep(0.5)  # then each is looked at once, all well within the 10 s hello deadline
    for s in sockets:
        s.setblocking(False)
        try:
            if s.recv(64) == b"":
                closed += 1
        except BlockingIOError:
            pass  # kept open: waits for a TLS ClientHello
        except OSError:
            closed += 1  # reset
    # Up to 256 kept: a few connections of the attacks before may still be open and count.
    case.check(44 <= closed <= 54, f"300 worker port connections from one address: {closed} "
               "closed at once (at least 44: 256 per address)")
    for s in sockets:
        s.close()
    harness.wait_for("the worker port's refusals in the log",
                     lambda: "worker port: " in open(log_path, errors="replace").read(), 10)
    with open(log_path, errors="replace") as log:
        lines = [line for line in log if "connection(s) refused over the limits" in line and
                 "worker port: " in line]
    case.check(1 <= len(lines) <= 2 and "which had 256 open of 256 per address" in lines[0],
               f"the worker port's refusals are logged once per 10 s with a count ({lines})")

    def challenged():
        try:
            with harness.WorkerSocket(master.worker_port, master.fingerprint(), timeout=10) as s:
                return b"challenge" in s.recv(200)
        except Exception:  # noqa: BLE001 - a closed connection fails the handshake
            return False
    case.check(harness.wait_for("a worker's challenge after the flood", challenged, 10),
               "closed connections are released: a worker connects after the flood")

    # Slowloris: 40 headers sent a byte at a time are cut 10 s after their first byte.
    slow = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", master.web), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
        slow.append(s)
    started, cut = time.monotonic(), set()
    while len(cut) < len(slow) and time.monotonic() - started < 20:
        for i, s in enumerate(slow):
            if i in cut:
                continue
            try:
                s.sendall(b"s")
            except OSError:
                cut.add(i)
        time.sleep(1)
    case.check(len(cut) == len(slow), f"40 headers sent a byte a second are cut within 20 s "
               f"({len(cut)} cut after {time.monotonic() - started:.1f} s)")
    for s in slow:
        s.close()

    # Bodies: 40 webhooks announcing 24 MiB each, 1 MiB sent, then silence. Their memory is
    # capped (64 MiB): most get 503 before sending anything more.
    holders = []
    head = (b"POST /change_hook/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-GitHub-Event: push\r\nContent-Length: " + str(24 * 1024 * 1024).encode() +
            b"\r\n\r\n")
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", master.web), timeout=5)
        s.sendall(head)
        holders.append(s)
    refused = 0
    for s in holders:
        s.settimeout(0.5)
        try:
            if s.recv(200).startswith(b"HTTP/1.1 503"):
                refused += 1
                continue
        except OSError:
            pass
        try:
            s.settimeout(5)
            s.sendall(b"x" * (1024 * 1024))
        except OSError:
            pass
    case.check(refused >= 37, f"40 webhooks of 24 MiB at once: {refused} got 503 (64 MiB of "
               "bodies fit two)")
    time.sleep(1)
    for s in holders:
        s.close()

    # Wrong passwords from 127.0.0.3: five 401s, then 429s; one log line, not 1,000.
    wrong = (b"POST /api/v1/builders/tests/force HTTP/1.1\r\nHost: localhost\r\nAuthorization: " +
             basic("admin", "wrong").encode() + b"\r\nContent-Length: 0\r\n\r\n")
    statuses = []
    with socket.create_connection(("127.0.0.1", master.web), timeout=10,
                                  source_address=("127.0.0.3", 0)) as s:
        lines = s.makefile("rb")
        for _ in range(1000):
            s.sendall(wrong)
            status = int(lines.readline().split()[1])
            length = 0
            while (line := lines.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            lines.read(length)
            statuses.append(status)
    case.check(statuses[:5] == [401] * 5 and statuses.count(429) >= 990,
               f"1,000 wrong passwords from one address: 401 five times, then 429 "
               f"({statuses.count(401)} 401, {statuses.count(429)} 429)")
    status, _ = master.post("/api/v1/builders/tests/force", b"{}", auth=case.auth)
    case.check(status == 202, f"meanwhile the right password from another address works ({status})")

    # Wrong webhook signatures from 127.0.0.4: 403, then 429.
    body = b'{"zen": "x"}'
    statuses = [status_of(raw_request(
        master, b"POST /change_hook/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: ping\r\n"
        b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body,
        source="127.0.0.4")) for _ in range(100)]
    case.check(statuses.count(403) == 6 and statuses.count(429) == 94,
               f"100 wrong signatures from one address: six 403, then 429 "
               f"({statuses.count(403)} 403, {statuses.count(429)} 429)")

    # Cross-site requests with the user's credentials (a browser would send them).
    force = (b"POST /api/v1/builders/tests/force HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " +
             basic(*case.auth).encode() + b"\r\nConnection: close\r\n")
    for what, extra, expect in [
        ("Content-Type: text/plain", b"Content-Type: text/plain\r\n", 415),
        ("Origin: https://evil.example", b"Origin: https://evil.example\r\n"
         b"Content-Type: application/json\r\n", 403),
        ("Sec-Fetch-Site: cross-site", b"Sec-Fetch-Site: cross-site\r\n"
         b"Content-Type: application/json\r\n", 403),
    ]:
        status = status_of(raw_request(master, force + extra + b"Content-Length: 2\r\n\r\n{}"))
        case.check(status == expect, f"a force with {what}: {expect} ({status})")

    # Log flooding: hellos with a 3 MiB name and a newline-forged line; the log grows little.
    before = harness.os.path.getsize(log_path)
    for i in range(20):
        with harness.WorkerSocket(master.worker_port, master.fingerprint(), timeout=10) as s:
            challenge = json.loads(Lines(s).readline())
            name = ("\n2026-01-01 [error] forged \x1b[31m" if i == 0 else "") + "n" * (3 << 20)
            s.sendall(json.dumps({"type": "hello", "name": name, "proof": "0" * 64,
                                  "max_builds": 1,
                                  "protocol": challenge["protocol"]}).encode() + b"\n")
            try:
                s.recv(200)
            except OSError:
                pass
        with harness.WorkerSocket(master.worker_port, master.fingerprint(), timeout=10) as s:
            Lines(s).readline()
            s.sendall(json.dumps({"type": "t" * (3 << 20)}).encode() + b"\n")
            try:
                s.recv(200)
            except OSError:
                pass
    time.sleep(0.5)
    grown = harness.os.path.getsize(log_path) - before
    case.check(grown < 200 * 1024, f"40 worker lines with a 3 MiB name or type: the master's log "
               f"grew {grown} bytes (under 200 KiB)")
    with open(log_path, errors="replace") as log:
        forged = [line for line in log if line.startswith("2026-01-01 [error] forged")]
    case.check(not forged, "a newline in a worker's name forges no log line")
    with open(log_path, errors="replace") as log:
        text = log.read()
    case.check(text.count("wrong user or password") <= 2 and
               text.count("wrong signature") <= 2,
               f"1,000 wrong passwords and 100 wrong signatures are logged once per 10 s "
               f"({text.count('wrong user or password')} and {text.count('wrong signature')} "
               "lines)")


def bounded(case, master):
    """Runs flood() while probing /healthz and the RSS; checks the bounds."""
    probe = Probe(master)
    probe.start()
    try:
        flood(case, master)
    finally:
        probe.stop()
    latencies = sorted(probe.latencies)
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else None
    worst = latencies[-1] if latencies else None
    print(f"/healthz under attack: {len(latencies)} probes, p99 {p99 * 1000:.1f} ms, max "
          f"{worst * 1000:.1f} ms; master RSS at most {probe.rss_max / 1024 / 1024:.0f} MB")
    case.check(latencies and not probe.failures,
               f"/healthz answered every probe during the attacks ({probe.failures[:3]})")
    case.check(p99 is not None and p99 < HEALTHZ_P99,
               f"/healthz p99 under attack below {HEALTHZ_P99 * 1000:.0f} ms")
    case.check(worst is not None and worst < HEALTHZ_MAX,
               f"/healthz slowest answer under attack below {HEALTHZ_MAX * 1000:.0f} ms")
    bound = SANITIZED_RSS_BOUND if harness.sanitized(master.process.pid) else RSS_BOUND
    case.check(probe.rss_max < bound, f"the master's RSS stayed below {bound >> 20} MB "
               f"({probe.rss_max >> 20} MB)")


def main(case):
    # Without a webhook secret: anyone can post to the hook.
    master = case.start_master(config(case, webhook_secret=False))
    attacks = Attacks(case, master)
    attacks.webhook(deep(DEEP), f"an unsigned webhook body nested {DEEP} deep (no secret set)")
    master.kill()
    case.masters.remove(master)

    # The build spec exceeds the 4 MiB line limit: two steps of 2.5 MiB each, one an alias of
    # the other (a config text is at most 4 MiB).
    huge_step = 5 * 1024 * 1024 // 2
    master = case.start_master(config(case, huge_step=huge_step))
    attacks = Attacks(case, master)

    # Item 1: one line (or one body) kills the master.
    attacks.worker_line(deep(DEEP) + b"\n", f"a worker line nested {DEEP} deep before hello")
    attacks.webhook(deep(DEEP), f"a signed webhook body nested {DEEP} deep")
    # An API body is at most 64 KiB (item 4): the 2 MB one is refused unread; one that fits
    # the limit but nests 30,000 deep reaches the depth check.
    for levels, expect in [(DEEP_FORCE, 413), (DEEP_FORCE_FITS, 400)]:
        body = b'{"branch": ' + deep(levels) + b"}"
        try:
            status, answer = master.post("/api/v1/builders/tests/force", body, auth=case.auth)
        except OSError as error:
            status, answer = None, repr(error)
        case.check(status == expect, f"a force body nested {levels} deep: {expect} ({status}: "
                   f"{str(answer)[:200]})")
        attacks.survived(f"a force body nested {levels} deep")

    # Item 2: one wrong type aborts the master.
    for what, payload in [
        ('"commits": [1]', push(case, "refs/heads/feature/x", commits=[1])),
        ('"commits": ["x"]', push(case, "refs/heads/feature/x", commits=["x"])),
        ('"commits": [{"author": 1, "added": 2}]',
         push(case, "refs/heads/feature/x", commits=[{"id": "a" * 40, "author": 1, "added": 2}])),
        ('"commits": [{"message": {}}]',
         push(case, "refs/heads/feature/x", commits=[{"id": "a" * 40, "message": {}}])),
        ('"head_commit": 5 and no commits',
         push(case, "refs/heads/feature/x", commits=[], extra={"head_commit": 5})),
        ('"ref": 7', push(case, "refs/heads/feature/x", extra={"ref": 7})),
    ]:
        attacks.webhook(encoded(payload), f"a signed push with {what}")
    attacks.webhook(encoded({**push(case, "refs/heads/feature/x"), "repository": []}),
                    'a signed push with "repository": []')
    attacks.webhook(b"[1, 2]", "a signed push whose body is a list")
    nothing_stored(case, master, "after the deep bodies and the wrong types")

    # Item 3: refs git would refuse are refused at the hook, saying why.
    for what, ref in [
        ("a 20 MiB ref", "refs/heads/" + "a" * (20 * 1024 * 1024)),
        ("a 300-byte ref component", "refs/heads/" + "a" * 300),
        ("a ref with '..'", "refs/heads/a..b"),
        ("a ref ending in .lock", "refs/heads/x.lock"),
        ("a ref with a space", "refs/heads/has space"),
        ("a ref with a control character", "refs/heads/bell\x07"),
        ("a ref with '@{'", "refs/heads/a@{1}"),
        ("a ref with '//'", "refs/heads/a//b"),
    ]:
        answer = attacks.webhook(encoded(push(case, ref)), f"a signed push of {what}")
        case.check("ref" in str(answer.get("error", "") if isinstance(answer, dict) else ""),
                   f"{what}: the 400 says what is wrong with the ref")
    for what, body, expect in [
        ("a branch with '..'", {"branch": "a..b"}, 400),
        ("a 2,000-byte branch", {"branch": "b" * 2000}, 400),
        ("a 20 MiB branch", {"branch": "b" * (20 * 1024 * 1024)}, 413),  # over 64 KiB
    ]:
        try:
            status, answer = master.post("/api/v1/builders/tests/force", encoded(body),
                                         auth=case.auth)
        except OSError as error:
            status, answer = None, repr(error)
        case.check(status == expect,
                   f"a force of {what}: {expect} ({status}: {str(answer)[:200]})")
        attacks.survived(f"a force of {what}")
    nothing_stored(case, master, "after the refs git refuses")

    # Item 3: a build whose spec cannot be sent to a worker ends `exception`, once.
    case.start_workers(master, 1)
    status, answer = master.post("/api/v1/builders/huge/force", b"{}", auth=case.auth)
    case.check(status == 202, f"force of builder huge: 202 ({status}: {answer})")
    ended = harness.wait_for("the build of huge to end", lambda: [
        b for b in master.builds("builder=huge") if b["result"] != "running"], 60)
    time.sleep(4)  # a retry would have started another build by now (dispatch passes: 5 s)
    builds = master.builds("builder=huge")
    case.check([b["result"] for b in builds] == ["exception"],
               f"the build whose spec exceeds the line limit ends exception, once "
               f"({[b['result'] for b in builds]}; first ended {ended[0]['result']})")
    attacks.survived("a build whose spec cannot be sent")

    # Item 3: a request whose builds are lost again and again ends `exception` after
    # max_retries (2) retries instead of looping.
    fake = FakeWorker(master, "fake/0", case.fake_password, connections=8)
    status, answer = master.post("/api/v1/builders/flaky/force", b"{}", auth=case.auth)
    case.check(status == 202, f"force of builder flaky: 202 ({status}: {answer})")
    fake.start()
    fake.join(timeout=90)
    builds = master.builds("builder=flaky")
    results = [b["result"] for b in reversed(builds)]
    case.check(results == ["retry", "retry", "exception"],
               f"a request lost on its worker every time: retry, retry, exception ({results}; "
               f"the fake worker was sent {len(fake.builds)} builds)")
    requests = master.requests("completed")
    case.check([r["builder"] for r in requests if r["builder"] == "flaky"] == ["flaky"] and
               master.requests("pending") == [],
               "its request is completed, nothing is pending")
    attacks.survived("a worker that drops every build")

    # Item 7: invalid UTF-8 in the ref's commit message and author is replaced (U+FFFD).
    payload = encoded(push(case, "refs/heads/feature/utf8", message="MSG"))
    payload = payload.replace(b'"MSG"', b'"bad \xff\xfe bytes \\udc80 and \xc3("')
    payload = payload.replace(b'"name": "Dev"', b'"name": "D\xe9v"')
    status, answer = master.webhook(payload)
    case.check(status == 200, f"a push with invalid UTF-8 in its message and author: 200 "
               f"({status}: {answer})")
    changes = strict_changes(case, master)
    if changes is not None:
        mine = [c for c in changes if c["branch"] == "feature/utf8"]
        case.check(len(mine) == 1 and "\ufffd" in mine[0]["comments"] and
                   mine[0]["author"].startswith("D\ufffdv"),
                   f"the invalid bytes read as U+FFFD ({mine})")
    attacks.survived("invalid UTF-8")

    # Item 8: /healthz answers GET and HEAD only, whatever the method sent.
    with socket.create_connection(("127.0.0.1", master.web), timeout=10) as s:
        s.sendall(b"M" * 5000 + b" /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        answer = s.recv(4096).decode(errors="replace")
    case.check(answer.startswith("HTTP/1.1 405") and "Allow: GET, HEAD" in answer,
               f"a 5,000-byte method on /healthz: 405 with Allow ({answer.splitlines()[:1]})")
    attacks.survived("a 5,000-byte method")

    # Items 4-6: connections, slow headers, bodies, passwords, signatures, CSRF, log flooding;
    # /healthz and the RSS within their bounds throughout.
    bounded(case, master)
    attacks.survived("the floods of items 4-6")


if __name__ == "__main__":
    harness.run(main)
