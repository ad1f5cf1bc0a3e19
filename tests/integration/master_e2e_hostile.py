#!/usr/bin/env python3
"""Hostile input against a real ci-master (issue 14, items 1-3, 7 and 8): bodies nested far too
deep on both ports, values of the wrong type, refs git would refuse, a build whose spec cannot be
sent, a worker that drops every build, invalid UTF-8, and a 5,000-byte method. After each attack
the master must still run and answer /healthz; the attacks of items 1-3 store no change and no
request; builds that cannot run end `exception` instead of being retried forever;
/api/v1/changes stays valid UTF-8; /healthz takes GET and HEAD only.

A master that crashed is reported (FAIL) and started again, so that one run shows every attack."""

import hashlib
import hmac
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
        with socket.create_connection(("127.0.0.1", self.master.worker_port), timeout=10) as s:
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
                with socket.create_connection(("127.0.0.1", self.master.worker_port),
                                              timeout=8) as s:
                    lines = s.makefile("rb")
                    challenge = json.loads(lines.readline())
                    proof = hmac.new(self.password.encode(), challenge["nonce"].encode(),
                                     hashlib.sha256).hexdigest()
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
    steps: [{{name: test, run: "echo {huge_run}"}}]
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


def main(case):
    # Without a webhook secret: anyone can post to the hook.
    master = case.start_master(config(case, webhook_secret=False))
    attacks = Attacks(case, master)
    attacks.webhook(deep(DEEP), f"an unsigned webhook body nested {DEEP} deep (no secret set)")
    master.kill()
    case.masters.remove(master)

    huge_step = 5 * 1024 * 1024  # the build spec exceeds the 4 MiB line limit
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


if __name__ == "__main__":
    harness.run(main)
