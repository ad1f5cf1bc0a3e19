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

The UI is being built by several lanes at once: a scenario in GATED whose page or route does not
answer yet is SKIPped with a loud line naming the lane (LIBCI_BROWSER_STRICT=1 runs them all, so
that a missing page fails). Once the lanes are on main, GATED is emptied.

SKIPs (exit 77) loudly without chromium (LIBCI_CHROMIUM, else chromium on PATH), playwright-core
(LIBCI_PLAYWRIGHT, else BUILD/peers/node_modules/playwright-core) or node: scripts/test.sh
installs them (scripts/lib.sh, ensure_test_peers).
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import html_check  # noqa: E402 - beside this file
import master_harness as harness  # noqa: E402 - tests/integration

# Scenario -> the lane whose page or route it waits for. Empty it once they are all on main.
GATED = {
    "login": "ui-auth",
    "logout": "ui-auth",
    "force": "ui-auth (POST /builders/NAME/force) and ui-pages (the builder page)",
    "live-log": "ui-build (the build page)",
    "home-live": "ui-pages (the home page)",
    "workers": "ui-pages (the workers page)",
    "stop": "ui-auth (POST /builds/ID/stop) and ui-build (the build page)",
    "refused": "ui-auth (the form routes)",
    "xss": "ui-pages and ui-build (pages that show branches and logs)",
    "phone": "ui-pages (HTML pages)",
    "html-check": "ui-pages (HTML pages)",
}
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


def answer_of(master, method, path):
    """(status, content type, body text) of one request without credentials; redirects not
    followed."""
    request = urllib.request.Request(master.url(path), method=method, data=b"" if method ==
                                     "POST" else None)
    opener = urllib.request.build_opener(html_check._NoRedirect)
    try:
        with opener.open(request, timeout=30) as answer:
            return (answer.status, answer.headers.get("Content-Type", ""),
                    answer.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), ""


def gates(master, build_id):
    """Which scenarios can run: {name: {"run", "reason"}} from what the master answers. A page
    counts once it is HTML holding what its scenarios look for (a lane in progress may serve a
    page that does not show it yet)."""
    def page(path, marker):
        status, content_type, body = answer_of(master, "GET", path)
        if status != 200 or not content_type.startswith("text/html"):
            return False, f"GET {path}: {status} {content_type}", False
        return marker in body, f"GET {path} has no {marker!r} yet", True

    def route(path):
        status, _, _ = answer_of(master, "POST", path)
        return status not in (404, 405), f"POST {path}: {status}", False

    build_link = f'href="/builds/{build_id}'
    found = {
        "home": page("/", build_link), "login": page("/login", 'action="/login"'),
        "builder": page("/builders/tests", build_link), "workers": page("/workers", "remote/0"),
        "build": page(f"/builds/{build_id}", 'id="step-1"'),
        "force": route("/builders/tests/force"), "stop": route(f"/builds/{build_id}/stop"),
    }
    needs = {
        "api": [], "login": ["login"], "logout": ["login"], "force": ["login", "builder", "force"],
        "live-log": ["build"], "home-live": ["home"], "workers": ["workers"],
        "stop": ["login", "build", "stop"], "refused": ["builder", "force"],
        "xss": [], "html-check": [], "phone": [],
    }
    xss_pages = [p for p in ("home", "builder", "build") if found[p][0]]
    pages = {"home": "/", "login": "/login", "builder": "/builders/tests", "workers": "/workers",
             "build": f"/builds/{build_id}"}
    html_pages = [path for name, path in pages.items() if found[name][2]]
    strict = os.environ.get("LIBCI_BROWSER_STRICT") == "1"
    plan = {}
    for name, what in needs.items():
        missing = [found[w][1] for w in what if not found[w][0]]
        if name == "xss" and not xss_pages:
            missing = ["no page shows branches or logs: " +
                       ", ".join(found[p][1] for p in ("home", "builder", "build"))]
        if name in ("html-check", "phone") and not html_pages:
            missing = ["no HTML page: " + ", ".join(found[p][1] for p in pages)]
        run = not missing or (name not in GATED) or strict
        reason = f"waits for {GATED.get(name)}: {'; '.join(missing)}" if missing else ""
        plan[name] = {"run": run, "reason": reason}
    plan["xss"]["pages"] = xss_pages
    # Links the landed pages already make to pages of lanes still on their way (e.g. "Log in"
    # before /login exists): their 404s are SKIPped by the HTML checker, naming the lane.
    pending = {"/login": ("login", "ui-auth"), "/builders/": ("builder", "ui-pages"),
               "/workers": ("workers", "ui-pages"), "/builds/": ("build", "ui-build")}
    plan["html-check"]["pending"] = {} if strict else {
        prefix: f"{lane} ({found[key][1]})" for prefix, (key, lane) in pending.items()
        if not found[key][2]}
    plan["html-check"]["pages"] = plan["phone"]["pages"] = \
        list(pages.values()) if strict else html_pages
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
            path = url[len(base):]
            lane = next((lane for prefix, lane in gate["pending"].items()
                         if path.startswith(prefix)), None)
            if lane and problem == "GET answered 404":
                print(f"SKIP: html-check: a link to {path} answers 404: waits for {lane}")
            else:
                print(f"  {path}: {problem}")
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
    done = subprocess.run([node, os.path.join(HERE, "scenarios.js")], env=env, cwd=case.tmp,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=240)
    print(done.stdout, end="", flush=True)
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    case.check(done.returncode == 0 and not failed,
               f"the browser scenarios passed (node exit {done.returncode}, {len(failed)} FAIL)")
    html_checks(case, master, plan, state_file)
    shots = sorted(os.listdir(artifacts))
    case.check(shots, f"screenshots in {artifacts}: {', '.join(shots)}")


if __name__ == "__main__":
    harness.run(main)
