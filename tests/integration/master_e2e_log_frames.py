#!/usr/bin/env python3
"""A worker written in Python from the protocol's description (not libci's encoder) sends log
chunks to a real ci-master, their bytes cut across TCP sends as a slow network cuts them:

- a chunk's text is any bytes (newlines, a line that looks like a protocol message, NUL,
  invalid UTF-8) and comes back from the log API byte for byte;
- a text arriving in pieces, a line and its text in one send, two chunks in one send: all read;
- a chunk sent twice is stored once; an empty chunk is nothing;
- a log chunk before the hello is refused without its bytes being read; a chunk announcing more
  than the protocol's longest line closes the connection; the master stays up.
"""
import json
import time
import urllib.request

import master_harness as harness

MAX_LINE = 4 * 1024 * 1024


class RawWorker:
    """One protocol connection (TLS, the master's certificate pinned), its lines read and
    written by hand."""

    def __init__(self, master):
        self.sock = harness.WorkerSocket(master.worker_port, master.fingerprint())
        self.buffer = b""

    def line(self):
        """The next line as JSON; None when the master closed the connection."""
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def send(self, *pieces, pause=0.0):
        """Sends each piece with its own sendall, `pause` seconds apart."""
        for piece in pieces:
            self.sock.sendall(piece)
            if pause:
                time.sleep(pause)

    def hello(self, name, secret):
        challenge = self.line()
        assert challenge and challenge["type"] == "challenge", challenge
        proof = harness.proof(secret, challenge["nonce"], self.sock)
        self.send(message(type="hello", name=name, proof=proof, max_builds=1,
                          protocol=challenge["protocol"]))
        return self.line()


def message(**fields):
    return json.dumps(fields).encode() + b"\n"


def chunk_line(build, sequence, size, step=1):
    return message(type="log", build=build, step=step, seq=sequence, size=size)


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    worker = RawWorker(master)
    welcome = worker.hello("remote/0", case.passwords[0])
    case.check(welcome and welcome["type"] == "welcome", f"the hello is welcomed ({welcome})")
    harness.wait_for("remote/0 connected", lambda: master.connected("remote/0"))

    status, answer = master.post("/api/v1/builders/tests/force",
                                 json.dumps({"branch": "master", "reason": "e2e"}).encode(),
                                 auth=case.auth)
    case.check(status == 202, f"force: 202 ({status}: {answer})")
    start = worker.line()
    while start is not None and start["type"] != "build":
        start = worker.line()
    case.check(start is not None, "the build is sent to the raw worker")
    build = start["build"]
    tip = harness.git("rev-parse", "master", cwd=case.repo.origin).strip()
    worker.send(message(type="checked_out", build=build, branch_tip=tip, target_tip=tip,
                        merge_commit=""),
                message(type="step_started", build=build, step=1, name="test"))

    first = (b"line one\n" + message(type="build_finished", build=build, result="failure") +
             b"NUL \x00 and invalid UTF-8 \xff\xfe \xc3(\n")
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    last = b"no newline at the end"
    # The first chunk's text cut after 3 bytes, then the rest a moment later.
    worker.send(chunk_line(build, 0, len(first)) + first[:3], first[3:], pause=0.2)
    # The second's line alone, then its text in pieces; the third chunk's line and text in the
    # same send as the second's last piece.
    pieces = [big[i:i + 150_000] for i in range(0, len(big), 150_000)]
    pieces[-1] += chunk_line(build, 2, len(last)) + last
    worker.send(chunk_line(build, 1, len(big)), *pieces, pause=0.05)
    # The first chunk again (a resend: stored once), and an empty one.
    worker.send(chunk_line(build, 0, len(first)) + first + chunk_line(build, 3, 0))
    worker.send(message(type="step_finished", build=build, step=1, result="success",
                        exit_code=0, description=""),
                message(type="build_finished", build=build, result="success", message=""))

    def ended():
        found = [b for b in master.builds() if b["id"] == build]
        return found and found[0]["result"] not in ("running", "retry")

    harness.wait_for(f"build {build} ends", ended)
    result = [b for b in master.builds() if b["id"] == build][0]["result"]
    case.check(result == "success", f"the build's result is the worker's ({result})")
    with urllib.request.urlopen(master.url(f"/api/v1/builds/{build}/steps/1/log"),
                                timeout=30) as response:
        stored = response.read()
    expected = first + big + last
    case.check(stored == expected,
               f"the log comes back byte for byte ({len(stored)} bytes, expected "
               f"{len(expected)}; first difference at "
               f"{next((i for i, (a, b) in enumerate(zip(stored, expected)) if a != b), None)})")

    # Before the hello: refused at the chunk's line, its 4 MiB never read.
    stranger = RawWorker(master)
    stranger.line()  # the challenge
    stranger.send(chunk_line(1, 0, MAX_LINE))
    refused = stranger.line()
    case.check(refused is not None and refused["type"] == "refused" and
               "hello" in refused.get("reason", ""),
               f"a log chunk before the hello is refused ({refused})")
    case.check(stranger.line() is None, "and the connection is closed")

    # A size over the longest line: the connection is closed, the chunk is not stored.
    worker.send(chunk_line(build, 9, MAX_LINE + 1))
    case.check(worker.line() is None, "a chunk over the size limit closes the connection")
    case.check(master.get("/healthz")["status"] in ("ok", "degraded"),
               "the master is still up")


if __name__ == "__main__":
    harness.run(main)
