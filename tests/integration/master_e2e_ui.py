#!/usr/bin/env python3
"""The web UI's pages (issue 20) against a real master with a local worker: home (the grid,
its filters, the failing builders' section), a builder page, the workers page, badges, the
static assets and GET /api/v1/grid. Every page is HTML that parses with every tag closed
(Python's html.parser, not ours), carries the security headers, shows a branch named
`<script>alert(1)</script>` as text, and every link on it answers 200. Anonymous viewers get no
form that needs a login."""

import html.parser
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree

import master_harness as h

SCRIPT_BRANCH = "<script>alert(1)</script>"
BIDI_BRANCH = "rtl-\u202egnp.exe"  # a right-to-left override: shows as "rtl-exe.png"
BIDI_REASON = "see \u2066\u202eevil\u2069 here"
IMG = "<img src=x onerror=alert(1)>"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
class Checker(html.parser.HTMLParser):
    """Every element closed in order (void elements excepted), and the links, by kind."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.links, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.links.append(attrs[key])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        # Bidi controls (U+202A-202E, U+2066-2069) from data stay isolated in a <bdi> (in a
        # log's <pre>, a line ends their effect: a newline ends a paragraph in Unicode's
        # bidi algorithm).
        if any(0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 for c in data) \
                and "bdi" not in self.stack and "pre" not in self.stack:
            self.errors.append(f"a bidi control outside <bdi>: {data!r}")


def fetch(master, path, headers=None):
    """(status, headers, body text) of GET `path`, errors included."""
    request = urllib.request.Request(master.url(path), headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def check_page(case, master, path, checked):
    """Fetches an HTML page, checks it, then every link on it; returns its body."""
    status, headers, body = fetch(master, path)
    case.check(status == 200, f"GET {path}: 200 ({status})")
    case.check(headers["Content-Type"] == "text/html; charset=utf-8",
               f"GET {path}: text/html ({headers['Content-Type']})")
    csp = headers.get("Content-Security-Policy", "")
    case.check("script-src 'self'" in csp and "unsafe-inline" not in csp,
               f"GET {path}: a CSP without inline scripts ({csp})")
    case.check(headers.get("X-Content-Type-Options") == "nosniff", f"GET {path}: nosniff")
    parser = Checker()
    parser.feed(body)
    parser.close()
    case.check(not parser.errors and not parser.stack,
               f"GET {path}: every tag closed ({parser.errors[:3]}, open: {parser.stack})")
    case.check(body.startswith("<!DOCTYPE html>"), f"GET {path}: a doctype")
    case.check("<script>alert" not in body, f"GET {path}: no script tag from data")
    for link in parser.links:
        url = urllib.parse.urljoin(path, link)
        target = urllib.parse.urlsplit(url)
        if target.netloc or target.path in checked:
            continue
        checked.add(target.path)
        status, _, _ = fetch(master, url)
        case.check(status == 200, f"link {url} on {path}: 200 ({status})")
    return body


def main(case):
    config = case.remote_config("  local: {local: true, slaves: 2}\n") + \
        "builders:\n" + case.test_builders(["tests"]) + """  flaky:
    repository: demo
    workers: [local]
    steps:
      - name: fail
        run: "echo known to fail; exit 1"
failing_builders: [flaky]
schedulers:
  force: {type: force, builders: [tests, flaky]}
"""
    master = case.start_master(case.write_config(config))
    # Before any build: the default branch is a column already (its cells empty).
    grid = master.get("/api/v1/grid")
    case.check(grid["branches"] == ["master"] and not any(
        row["cells"] for row in grid["builders"]),
        f"/api/v1/grid before any build: a master column, no cells ({grid})")
    status, _, home = fetch(master, "/")
    case.check(status == 200 and "<bdi>master</bdi></th>" in home, "home before any build: master column")
    case.repo.branch(SCRIPT_BRANCH, ["script.txt"])
    case.repo.branch(BIDI_BRANCH, ["bidi.txt"])
    for builder, branch in (("tests", "master"), ("tests", SCRIPT_BRANCH), ("flaky", "master"),
                            ("tests", BIDI_BRANCH)):
        status, answer = master.post(
            f"/api/v1/builders/{builder}/force",
            json.dumps({"branch": branch, "reason": BIDI_REASON}).encode(), auth=case.auth)
        case.check(status == 202, f"forced {builder} on {branch!r} ({status} {answer})")
    h.wait_for("four finished builds", lambda: len(
        [b for b in master.builds() if b["result"] not in ("running", "retry")]) == 4, 90)
    results = {(b["builder"], b["branch"]): b for b in master.builds()}
    case.check(results[("tests", SCRIPT_BRANCH)]["result"] == "success",
               f"the build of the script branch succeeded ({results[('tests', SCRIPT_BRANCH)]})")

    # The grid's JSON: every datum of the home page.
    grid = master.get("/api/v1/grid")
    case.check(grid["branches"][0] == "master" and SCRIPT_BRANCH in grid["branches"],
               f"/api/v1/grid: master first, then the other branch ({grid['branches']})")
    rows = {row["name"]: row for row in grid["builders"]}
    case.check(set(rows) == {"tests", "flaky"} and rows["flaky"]["failing"]
               and not rows["tests"]["failing"], f"/api/v1/grid: builders ({rows})")
    cells = {c["branch"]: c for c in rows["tests"]["cells"]}
    case.check(cells[SCRIPT_BRANCH]["build"] == results[("tests", SCRIPT_BRANCH)]["id"]
               and cells["master"]["result"] == "success", f"/api/v1/grid: cells ({cells})")
    failures = master.get("/api/v1/grid?result=failure")
    case.check([r["name"] for r in failures["builders"]] == ["flaky"]
               and failures["branches"] == ["master"],
               f"/api/v1/grid?result=failure: only flaky on master ({failures})")

    checked = set()
    home = check_page(case, master, "/", checked)
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    case.check(escaped in home, "home: the script branch shows as text")
    case.check(home.index("<bdi>master</bdi></th>") < home.index(escaped),
               "home: master is the first column")
    known = home[home.index("Known failures"):]
    case.check("/builders/flaky" in known and "/builders/flaky" not in
               home[:home.index("Known failures")],
               "home: flaky is only in the known-failures section")
    case.check('action="/force"' not in home and 'name="csrf"' not in home,
               "home: no force form for an anonymous viewer")
    case.check('data-live="1"' in home and "/static/app.js?v=" in home,
               "home: live (its script linked by hash)")
    filtered = check_page(case, master, "/?result=failure", checked)
    case.check("/builders/flaky" in filtered and "/builders/tests" not in filtered,
               "home?result=failure: only flaky")
    by_repo = check_page(case, master, "/?repository=demo", checked)
    case.check("/builders/tests" in by_repo, "home?repository=demo: its builders")
    # An unknown filter value is a 400 naming what it may be, not "no builds".
    for path, named in (("/?repository=nope", "it has demo"),
                        ("/api/v1/grid?repository=nope", "it has demo"),
                        ("/?result=nope", "success, warnings, failure"),
                        ("/api/v1/grid?result=nope", "success, warnings, failure")):
        status, _, body = fetch(master, path)
        case.check(status == 400 and named in body and "nope" in body,
                   f"GET {path}: 400 naming {named!r} ({status} {body[:200]})")

    builder = check_page(case, master, "/builders/tests", checked)
    case.check(f"<bdi>{BIDI_BRANCH}</bdi>" in builder and f"{BIDI_REASON} (by" in builder,
               "builder page: a branch and a reason with bidi controls, each in a <bdi>")
    bidi_build = check_page(case, master, f"/builds/{results[('tests', BIDI_BRANCH)]['id']}",
                            checked)
    case.check(f"<bdi>{BIDI_BRANCH}</bdi>" in bidi_build,
               "build page: a branch with bidi controls in a <bdi>")
    case.check(escaped in builder and "local/" in builder,
               "builder page: the script branch as text, the worker")
    case.check('action="/builders/tests/force"' not in builder,
               "builder page: no force form for an anonymous viewer")
    # (A name without '/': the router splits a decoded path at each one.)
    status, _, body = fetch(master, "/builders/" + urllib.parse.quote(IMG, safe=""))
    case.check(status == 404 and "&lt;img src=x" in body and "<img" not in body,
               f"an unknown builder named like a script: 404, escaped ({status})")

    workers = check_page(case, master, "/workers", checked)
    case.check("local/0" in workers and "connected" in workers, "workers page: local/0 connected")
    # The config's static workers that never connected are listed, as such.
    never = '<span class="result none">never connected</span>'
    case.check("<td>remote/0</td>" in workers and "<td>remote/1</td>" in workers
               and workers.count(never) == 2,
               "workers page: remote/0 and remote/1 never connected")
    case.check("/pause" not in workers, "workers page: no actions for an anonymous viewer")
    listed = {w["name"]: w for w in master.get("/api/v1/workers")["workers"]}
    case.check(all(listed.get(name, {}).get("state") == "never connected"
                   and listed[name]["connected"] is False for name in ("remote/0", "remote/1")),
               f"/api/v1/workers: remote/0 and remote/1 never connected ({listed})")
    case.check(listed["local/0"]["max_builds"] == 1 and "<td>1</td>" in workers,
               f"max_builds on the page and in /api/v1/workers ({listed.get('local/0')})")

    # ETag: an unchanged page is a 304 for the live refresh.
    status, headers, _ = fetch(master, "/workers")
    etag = headers.get("ETag")
    status, _, _ = fetch(master, "/workers", {"If-None-Match": etag})
    case.check(etag and status == 304, f"/workers with its ETag: 304 ({etag} {status})")

    # Badges.
    status, headers, svg = fetch(master, "/badge/tests.svg")
    case.check(status == 200 and headers["Content-Type"] == "image/svg+xml"
               and ">success</text>" in svg and "no-cache" in headers["Cache-Control"],
               f"badge of tests on master: success ({status} {headers['Content-Type']})")
    status, _, svg = fetch(master, "/badge/flaky.svg?branch=master")
    case.check(status == 200 and ">failure</text>" in svg, "badge of flaky: failure")
    status, _, svg = fetch(master, "/badge/tests.svg?branch=" + urllib.parse.quote(SCRIPT_BRANCH))
    case.check(status == 200 and ">success</text>" in svg, "badge of the script branch")
    status, _, svg = fetch(master, "/badge/tests.svg?branch=nothing-here")
    case.check(status == 200 and ">unknown</text>" in svg, "badge of a branch never built")
    status, _, svg = fetch(master, "/badge/" + urllib.parse.quote(IMG, safe="") + ".svg")
    case.check(status == 404 and ">unknown</text>" in svg and "<img" not in svg,
               f"badge of an unknown builder: 404, an escaped unknown badge ({status})")

    # Hostile queries and paths: answered with valid UTF-8 (fetch decodes strictly), well-formed
    # HTML and SVG.
    for path in ("/?branches=99999999999999999999", "/?result=%ff%fe", "/?repository=%00",
                 "/builders/%ff%01"):
        status, _, body = fetch(master, path)
        parser = Checker()
        parser.feed(body)
        # A `branches` that is not an integer in 1-500, a result or repository that is not
        # one: a 400 naming the parameter.
        expected = (404,) if path.startswith("/builders/") else (400,)
        named = path[2:path.index("=")] if path.startswith("/?") else ""
        case.check(status in expected and not parser.errors and not parser.stack
                   and named in body, f"GET {path}: {status}, well-formed")
    for path in ("/badge/%ff%01.svg", "/badge/tests.svg?branch=%ff", "/badge/tests.txt"):
        status, headers, svg = fetch(master, path)
        try:
            xml.etree.ElementTree.fromstring(svg)
            parsed = True
        except xml.etree.ElementTree.ParseError:
            parsed = False
        case.check(status in (200, 404) and parsed, f"GET {path}: {status}, well-formed SVG")

    # Static assets: cacheable for good when asked by hash, revalidated otherwise.
    css = re.search(r'href="(/static/style\.css\?v=[0-9a-f]{16})"', home).group(1)
    status, headers, _ = fetch(master, css)
    case.check(status == 200 and "immutable" in headers["Cache-Control"]
               and headers["Content-Type"] == "text/css; charset=utf-8",
               f"{css}: immutable ({headers['Cache-Control']})")
    status, headers, _ = fetch(master, "/static/style.css")
    case.check(headers["Cache-Control"] == "no-cache", "/static/style.css: no-cache")
    status, _, _ = fetch(master, "/static/style.css", {"If-None-Match": headers["ETag"]})
    case.check(status == 304, "/static/style.css with its ETag: 304")
    status, _, _ = fetch(master, "/static/home.mustache")
    case.check(status == 404, "templates are not served")
    case.check("/api/v1/grid" in master.get("/api/v1")["endpoints"], "/api/v1 lists the grid")


if __name__ == "__main__":
    h.run(main)
