#!/usr/bin/env python3
"""Issue 14: the limits of `buildmaster.limits` are what the master applies. With small ones:
 - worker port: 3 connections from 127.0.0.1 are kept, a 4th is closed at once (per address);
   one from 127.0.0.2 is kept and the next closed (4 in all); the refusals are logged once per
   10 s with a count; connections without a hello are closed after `hello_timeout` (2 s);
 - HTTP port: 2 connections from one address are kept, a 3rd gets 503;
 - once those are closed, a real ci-worker connects and /healthz answers.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import master_harness as harness  # noqa: E402

LIMITS = ("limits: {worker_connections: 4, worker_connections_per_address: 3, "
          "http_connections_per_address: 2, hello_timeout: 2s}")


def open_connections(port, count, source="127.0.0.1"):
    return [socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
            for _ in range(count)]


def is_closed(s):
    """True when the master closed `s` (looked at once, without waiting)."""
    s.setblocking(False)
    try:
        return s.recv(64) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True  # reset


def main(case):
    text = case.standard_config(workers="remote")
    text = text.replace("buildmaster: {web_port: 0,", "buildmaster: {" + LIMITS + ", web_port: 0,",
                        1)
    master = case.start_master(case.write_config(text))
    log_path = os.path.join(case.tmp, f"master-{master.starts}.log")

    # The worker port, per address then in all.
    mine = open_connections(master.worker_port, 4)
    time.sleep(0.3)
    closed = [is_closed(s) for s in mine]
    case.check(closed == [False, False, False, True],
               f"3 worker port connections from one address are kept, the 4th closed ({closed})")
    other = open_connections(master.worker_port, 2, source="127.0.0.2")
    time.sleep(0.3)
    closed = [is_closed(s) for s in other]
    case.check(closed == [False, True],
               f"another address gets the 4th connection in all, not a 5th ({closed})")
    with open(log_path, errors="replace") as log:
        lines = [line for line in log if "worker port: " in line and "over the limits" in line]
    case.check(len(lines) == 1 and "1 connection(s) refused over the limits (the last from "
               "127.0.0.1, which had 3 open of 3 per address; 3 open of 4 in all)" in lines[0],
               f"the refusals are logged once per 10 s with a count ({lines})")
    # No hello: closed after hello_timeout (2 s), not the default 10 s.
    kept = [mine[0], mine[1], mine[2], other[0]]
    started = time.monotonic()
    harness.wait_for("connections without a hello to be closed",
                     lambda: all(is_closed(s) for s in kept), 8, interval=0.2)
    waited = time.monotonic() - started
    case.check(waited < 6, f"connections without a hello closed after hello_timeout 2 s "
               f"({waited + 0.3:.1f} s)")

    # The HTTP port: 2 per address.
    web = open_connections(master.web, 3)
    time.sleep(0.3)
    answers = []
    for s in web:
        s.setblocking(False)
        try:
            answers.append(s.recv(64)[:12])
        except BlockingIOError:
            answers.append(None)
    case.check(answers[:2] == [None, None] and answers[2] == b"HTTP/1.1 503",
               f"2 HTTP connections from one address are kept, the 3rd gets 503 ({answers})")
    for s in mine + other + web:
        s.close()

    # Released: a real worker connects, /healthz answers.
    case.start_worker(master, 0)
    harness.wait_for("remote/0 connected", lambda: master.connected("remote/0"), 30)
    case.check(master.get("/healthz")["status"] == "ok", "/healthz answers after the floods")


if __name__ == "__main__":
    harness.run(main)
