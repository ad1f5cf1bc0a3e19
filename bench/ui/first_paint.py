#!/usr/bin/env python3
"""The build page of a finished build whose step log is 40 MB: its first paint in chromium,
side by side with the same log's raw text (GET /api/v1/builds/ID/steps/1/log) opened in the
same browser, with the ratio.

    first_paint.py BUILD_DIR [--mb 40] [--rounds 5] [--keep]

A real ci-master and a real ci-worker (tests/integration/master_harness.py) run one build whose
step prints --mb MB of log lines (numbered, one in ten coloured with ANSI escapes, as compilers
and test runners print). Then chromium (Debian's, driven by npm playwright-core: LIBCI_CHROMIUM
and LIBCI_PLAYWRIGHT as scripts/test.sh exports them, else chromium on PATH and
BUILD_DIR/peers/node_modules/playwright-core) opens the build page and the raw log --rounds
times each, each in a fresh browser context, and bench/ui/first_paint.js reads the Paint Timing
API (first-contentful-paint, ms from the navigation's start) and the navigation timing.
Printed: the medians of each, the ratio build page / raw log, the bytes each transferred and the
DOM nodes of each. Target (issue 20): the build page's first paint under 1 s.

A build page that does not answer 200 is an error (exit 2).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

TARGET_MS = 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--mb", type=float, default=40.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    build = os.path.abspath(args.build_dir)
    source = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.environ["LIBCI_BUILD_DIR"] = build
    os.environ["LIBCI_SOURCE_DIR"] = source
    if args.keep:
        os.environ["LIBCI_E2E_KEEP"] = "1"
    sys.path.insert(0, os.path.join(source, "tests", "integration"))
    import master_harness as harness  # noqa: E402 - needs LIBCI_BUILD_DIR set first

    chromium = os.environ.get("LIBCI_CHROMIUM") or shutil.which("chromium")
    playwright = os.environ.get("LIBCI_PLAYWRIGHT") or os.path.join(
        build, "peers", "node_modules", "playwright-core")
    node = shutil.which("node")
    if not chromium or not node or not os.path.isfile(os.path.join(playwright, "index.js")):
        sys.exit("error: needs chromium, node and playwright-core (scripts/test.sh installs them: "
                 "Debian chromium, npm playwright-core into BUILD_DIR/peers)")

    # About 64 bytes a line; one line in ten coloured.
    lines = int(args.mb * 1e6 / 64)
    step = ("awk 'BEGIN { for (i = 1; i <= %d; i++) { if (i %% 10 == 0) "
            "printf \"%%09d \\033[32mPASS\\033[0m tests/test_module_%%05d.py::test_case\\n\", i, i %% 97; "
            "else printf \"%%09d compiling src/module_%%05d.cpp -O2 -Wall -Wextra ...ok\\n\", i, "
            "i %% 997 } }'" % lines)
    case = harness.Case("first-paint")
    status = 0
    try:
        config = case.remote_config() + f"""builders:
  loud:
    repository: demo
    workers: [remote]
    steps:
      - name: log
        run: {json.dumps(step)}
schedulers:
  force: {{type: force, builders: [loud]}}
"""
        master = case.start_master(case.write_config(config))
        case.start_workers(master, 1)
        began = time.monotonic()
        code, answer = master.post("/api/v1/builders/loud/force", b'{"reason": "bench"}',
                                   auth=case.auth)
        if code != 202:
            raise AssertionError(f"force: {code} {answer}")
        request = answer["requests"][0]
        done = harness.wait_for("the loud build", lambda: next(
            (b for b in master.builds() if b["request"] == request and
             b["result"] not in ("running", "retry")), None), timeout=600)
        size = len(master.get(f"/api/v1/builds/{done['id']}/steps/1/log").encode())
        print(f"build {done['id']}: {done['result']}, step log {size / 1e6:.1f} MB "
              f"({lines} lines), built in {time.monotonic() - began:.1f} s")
        page = f"/builds/{done['id']}"
        code, _ = harness_status(master, page)
        if code != 200:
            print(f"GET {page}: {code}: the build page did not answer")
            status = 2
            return status
        urls = [["build page", master.url(page)],
                ["raw log", master.url(f"/api/v1/builds/{done['id']}/steps/1/log")]]
        env = dict(os.environ, LIBCI_CHROMIUM=chromium, LIBCI_PLAYWRIGHT=playwright,
                   LIBCI_BENCH_URLS=json.dumps(urls), LIBCI_BENCH_ROUNDS=str(args.rounds))
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "first_paint.js")
        out = subprocess.run([node, script], env=env, capture_output=True, text=True,
                             timeout=900)
        if out.returncode != 0:
            raise AssertionError(f"first_paint.js: {out.stderr}")
        visits = [json.loads(line) for line in out.stdout.splitlines()]
        report(visits, args.rounds)
    finally:
        case.close()
    return status


def harness_status(master, path):
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(master.url(path), timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def report(visits, rounds):
    def median(label, key):
        values = [v[key] for v in visits if v["label"] == label and v[key] is not None]
        return statistics.median(values) if values else None

    print(f"median of {rounds} visits, each in a fresh browser context (ms from navigation "
          "start):")
    print(f"{'':12} {'first paint':>12} {'FCP':>8} {'response':>9} {'DOM ready':>10} "
          f"{'load':>8} {'bytes':>12} {'nodes':>7}")
    rows = {}
    for label in ("build page", "raw log"):
        row = {key: median(label, key) for key in (
            "first_paint", "first_contentful_paint", "response_start", "dom_content_loaded",
            "load", "transfer_bytes", "nodes")}
        rows[label] = row

        def cell(value, width, digits=0):
            return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
        print(f"{label:12} {cell(row['first_paint'], 12)} {cell(row['first_contentful_paint'], 8)} "
              f"{cell(row['response_start'], 9)} {cell(row['dom_content_loaded'], 10)} "
              f"{cell(row['load'], 8)} {cell(row['transfer_bytes'], 12)} {cell(row['nodes'], 7)}")
    ours = rows["build page"]["first_contentful_paint"]
    peer = rows["raw log"]["first_contentful_paint"]
    if ours is not None and peer:
        print(f"build page first contentful paint {ours:.0f} ms vs raw log {peer:.0f} ms: "
              f"ratio {ours / peer:.2f} (target: under {TARGET_MS:.0f} ms: "
              f"{'met' if ours < TARGET_MS else 'NOT met'})")


if __name__ == "__main__":
    sys.exit(main())
