#!/usr/bin/env python3
"""The web UI in a real browser (issue 20): a real ci-master and two real ci-workers on
127.0.0.1 (tests/integration/master_harness.py), Debian's chromium driven by playwright-core
(npm) through scenarios.js, then the HTML checker (html_check.py) over every page the UI serves.

Scenarios (scenarios.js): the browser reads /healthz and the JSON API; logs in (a wrong password
first); logs out in a second session, whose cookie then logs in no more; forces a build through the builder page's form; watches its live log to the end on the
build page while the home page, open meanwhile, shows the result without a reload; opens the
workers page; stops a running build through its form; is refused a force without a login, with
a forged CSRF token and with none; a <script> in a branch name, a reason and log lines (static
and live) shows as text and no dialog opens; each page fits a phone's width. Screenshots of each page go to
BUILD/test-artifacts/browser/.

Every scenario runs: a page or route that is missing fails it, naming what it looked for.

SKIPs (exit 77) loudly without chromium (LIBCI_CHROMIUM, else chromium on PATH), playwright-core
(LIBCI_PLAYWRIGHT, else BUILD/peers/node_modules/playwright-core) or node: scripts/test.sh
installs them (scripts/lib.sh, ensure_test_peers).
"""

import json
import os
import shutil
import subprocess
import sys
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import html_check  # noqa: E402 - beside this file
import master_harness as harness  # noqa: E402 - tests/integration

XSS_BRANCH = "feature/<svg/onload=alert(1)>"
SLOW_BRANCH = "feature/ui-slow"
# The xss builder's step: log lines with markup and ANSI colours, a wait, then a live line.
XSS_STEP = ("printf '%s\\n' '<script>alert(\"log\")</script>' '<img src=x onerror=alert(\"img\")>'; "
            "printf '\\033[31m<b>red</b>\\033[0m\\n'; echo waiting; "
            "while [ ! -e \"$RELEASE\" ]; do sleep 0.1; done; "
            "printf '%s\\n' '<script>alert(\"live\")</script>'")


def peers():
    """(chromium, playwright package dir, node), or exits 77 naming what is missing."""
    # From scripts/test.sh's environment, else where it installs them (`meson test` by hand).
    chromium = os.environ.get("LIBCI_CHROMIUM") or shutil.which("chromium")
    playwright = os.environ.get("LIBCI_PLAYWRIGHT") or os.path.join(
        harness.BUILD, "peers", "node_modules", "playwright-core")
    node = shutil.which("node")
    missing = []
    if not chromium or not os.access(chromium, os.X_OK):
        missing.append("chromium (LIBCI_CHROMIUM unset: scripts/test.sh installs Debian's chromium)")
    if not playwright or not os.path.isfile(os.path.join(playwright, "index.js")):
        missing.append("playwright-core (LIBCI_PLAYWRIGHT unset: scripts/test.sh installs it "
                       "with npm into build/peers)")
    if not node:
        missing.append("node (Debian's nodejs)")
    if missing:
        print("SKIP: the browser test needs " + "; ".join(missing), flush=True)
        sys.exit(77)
    return chromium, playwright, node


def config(case):
    def builder(name, run, release):
        return f"""  {name}:
    repository: demo
    workers: [remote]
    steps:
      - name: test
        run: {json.dumps(run)}
        env: {{RELEASE: "{release}", MARKS: "{case.marks}"}}
"""
    return case.remote_config() + "builders:\n" + \
        builder("tests", "sh ./test.sh", case.release) + \
        builder("stoppable", "sh ./test.sh", os.path.join(case.tmp, "never")) + \
        builder("xss", XSS_STEP, os.path.join(case.tmp, "xss-release")) + \
        "schedulers:\n  force: {type: force, builders: [tests, stoppable, xss]}\n"


def gates(master, build_id):
    """What each scenario runs over: {name: {"run", "reason", ...}}. Every scenario runs: a page
    or route that is missing fails it (scenarios.js says which)."""
    pages = ["/", "/login", "/builders/tests", "/workers", f"/builds/{build_id}"]
    names = ("api", "login", "logout", "force", "live-log", "home-live", "workers", "stop",
             "refused", "xss", "html-check", "phone")
    plan = {name: {"run": True, "reason": ""} for name in names}
    plan["xss"]["pages"] = ["home", "builder", "build"]
    plan["html-check"]["pages"] = plan["phone"]["pages"] = pages
    return plan


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def html_checks(case, master, plan, state_file):
    """The HTML checker over the pages, anonymously and as the logged-in user of the browser."""
    gate = plan["html-check"]
    if not gate["run"]:
        print(f"SKIP: scenario html-check: {gate['reason']}", flush=True)
        return
    paths = list(gate["pages"])
    if any(p.startswith("/builds/") for p in paths):  # every build's page (stopped, hostile...)
        paths += [f"/builds/{b['id']}" for b in master.builds() if f"/builds/{b['id']}" not in paths]
    cookie = None
    if os.path.exists(state_file):
        cookies = json.load(open(state_file)).get("cookies", [])
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in cookies) or None
    base = master.url("")
    for viewer, header in (("anonymous", None), ("logged in", cookie)):
        if viewer == "logged in" and not header:
            print("SKIP: html-check as a logged-in user: no session (scenario login did not run)")
            continue
        crawler = html_check.Crawler(base, header).crawl(paths)
        problems = []
        for url, problem in crawler.problems:
            print(f"  {url[len(base):]}: {problem}")
            problems.append(problem)
        case.check(not problems,
                   f"html-check ({viewer}): {len(crawler.pages)} HTML pages and "
                   f"{len(crawler.fetched)} URLs checked, {len(problems)} problems")
        pages = "".join(crawler.fetch(url)[2].decode(errors="replace") for url in crawler.pages)
        case.check(case.auth[1] not in pages, f"html-check ({viewer}): no page shows the password")


def main(case):
    chromium, playwright, node = peers()
    master = case.start_master(case.write_config(config(case)))
    case.start_workers(master, 2)
    case.repo.branch(SLOW_BRANCH, ["slow"])
    case.repo.branch(XSS_BRANCH, ["xss.txt"])
    # One finished build for the pages to show (and to probe /builds/ID with).
    status, answer = master.post("/api/v1/builders/tests/force",
                                 json.dumps({"branch": "master", "reason": "first"}).encode(),
                                 auth=case.auth)
    case.check(status == 202, f"a first build forced through the API ({status}: {answer})")
    first = harness.wait_for("the first build", lambda: next(
        (b for b in master.builds() if b["request"] == answer["requests"][0] and
         b["result"] not in ("running", "retry")), None))
    plan = gates(master, first["id"])
    ran = [name for name, gate in plan.items() if gate["run"]]
    print("scenarios that run: " + ", ".join(ran) + " (scenarios.js prints a SKIP line for each "
          "other)", flush=True)

    artifacts = os.path.join(harness.BUILD, "test-artifacts", "browser")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    state_file = os.path.join(case.tmp, "browser-state.json")
    plan_file = os.path.join(case.tmp, "browser-plan.json")
    write_private(plan_file, json.dumps({
        "base": master.url("").rstrip("/"), "user": case.auth[0], "password": case.auth[1],
        "playwright": playwright, "chromium": chromium, "artifacts": artifacts,
        "release": case.release, "xss_release": os.path.join(case.tmp, "xss-release"),
        "state_file": state_file, "marker": uuid.uuid4().hex[:12],
        "branches": {"slow": SLOW_BRANCH, "xss": XSS_BRANCH}, "scenarios": plan}))
    env = dict(os.environ, LIBCI_BROWSER_PLAN=plan_file)
    # Within meson's timeout (360 s), so that a browser that hangs is reported with what it
    # printed, not killed with the test in silence.
    try:
        done = subprocess.run([node, os.path.join(HERE, "scenarios.js")], env=env,
                              cwd=case.tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=300)
    except subprocess.TimeoutExpired as expired:
        output = expired.stdout or b""  # bytes, even with text=True
        print(output.decode(errors="replace") if isinstance(output, bytes) else output,
              end="", flush=True)
        case.check(False, "the browser scenarios ended within 300 s")
        return
    print(done.stdout, end="", flush=True)
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    case.check(done.returncode == 0 and not failed,
               f"the browser scenarios passed (node exit {done.returncode}, {len(failed)} FAIL)")
    html_checks(case, master, plan, state_file)
    shots = sorted(os.listdir(artifacts))
    case.check(shots, f"screenshots in {artifacts}: {', '.join(shots)}")


if __name__ == "__main__":
    harness.run(main)
