#!/usr/bin/env python3
"""The HTTP edges of a real ci-master (issue 20, the hostile tester's low findings; issue 14):

- Host: a request whose Host names another site (DNS rebinding: a page of evil.example whose
  name was made to resolve to the master) is refused with 421 on every page and API route; the
  master's own names (localhost, buildmaster.host, buildmaster.url's host, buildmaster.web_hosts)
  and IP addresses pass, in any case and with a final dot; the webhook and /healthz take any
  Host; a malformed or doubled Host is a 400.
- Transfer-Encoding other than chunked: 501, the connection closed, nothing stored.
- Every answer carries nosniff and a Content-Security-Policy (a JSON 404 that echoes a path with
  `<script>` included); HTML pages keep their own policy, sent once; a build's file under
  /results is sandboxed.
- Location: a login's `next` with a space, UTF-8 and a stray '%' comes back percent-encoded.
- An unknown path asked for by a browser (Accept: text/html) is an HTML 404 page in the site's
  frame; the same path asked for by a script is JSON.

Raw sockets (Python's own, not libci's HTTP) send exactly the bytes under test."""

import hashlib
import hmac
import json
import os
import urllib.parse
import uuid

import master_harness as harness
from master_e2e_hostile import raw_request


def config(case):
    return case.write_config(f"""
buildmaster:
  web_port: 0
  worker_port: 0
  state: {case.tmp}/state.sqlite
  host: ci-host.example.org
  url: "https://CI.Example.org:8443/ci/"
  web_hosts: [proxy.example.net]
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
github: {{webhook_secret: "{case.webhook_secret}"}}
slaves:
  local: {{local: true}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  tests:
    repository: demo
    workers: [local]
    steps: [{{name: test, run: "true"}}]
schedulers:
  branches: {{type: branch, repository: demo, builders: [tests], branches: ["feature/*"],
             tree_stable_timer: 1s}}
  force: {{type: force, builders: [tests]}}
""")


class Answer:
    def __init__(self, raw):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0][9:12]) if lines[0].startswith("HTTP/1.1 ") else None
        self.headers = [tuple(part.strip() for part in line.split(":", 1))
                        for line in lines[1:] if ":" in line]

    def header(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def __repr__(self):
        return repr(self.raw[:300])


def exchange(master, data):
    """Sends `data` on a new connection, reads until the master closes it (every request here
    says Connection: close, or is refused with a close)."""
    return Answer(raw_request(master, data))


def get(master, path, host=None, accept="application/json", extra=""):
    host = f"127.0.0.1:{master.web}" if host is None else host
    host_line = f"Host: {host}\r\n" if host != "" else ""
    return exchange(master, (f"GET {path} HTTP/1.1\r\n{host_line}Accept: {accept}\r\n{extra}"
                             "Connection: close\r\n\r\n").encode())


def hosts(case, master):
    port = master.web
    for host in [f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}",
                 f"ci-host.example.org:{port}", "CI-HOST.example.org.", "ci.example.org",
                 f"ci.example.org:{port}", "proxy.example.net", "10.1.2.3:80"]:
        answer = get(master, "/api/v1/builders", host)
        case.check(answer.status == 200, f"Host {host}: 200 ({answer})")
    # HTTP/1.0 without a Host: not a browser; answered.
    answer = exchange(master, b"GET /api/v1/builders HTTP/1.0\r\n\r\n")
    case.check(answer.status == 200, f"HTTP/1.0 without Host: 200 ({answer})")
    for path, accept in [("/api/v1/builders", "application/json"), ("/", "text/html"),
                         ("/workers", "text/html"), ("/api/v1/grid", "*/*"),
                         ("/no/such/page", "text/html")]:
        for host in [f"evil.example:{port}", "ci.example.org.evil.example", "localhost.evil"]:
            answer = get(master, path, host, accept)
            error = answer.body.decode(errors="replace")
            case.check(answer.status == 421 and "web_hosts" in error and "DNS rebinding" in error
                       and b"ci-" not in answer.body,
                       f"GET {path} with Host {host}: 421 naming buildmaster.web_hosts, "
                       f"no page data ({answer})")
    for host in ["evil.example:x", "a:b:c", "[::1", "[evil]:80", ":80"]:
        answer = get(master, "/api/v1/builders", host)
        case.check(answer.status == 400 and b"Host" in answer.body,
                   f"malformed Host {host!r}: 400 ({answer})")
    doubled = exchange(master, (f"GET /api/v1/builders HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                "Host: evil.example\r\nConnection: close\r\n\r\n").encode())
    case.check(doubled.status == 400, f"two Host fields: 400 ({doubled})")
    # /healthz and the webhook take any Host (probes; GitHub sends its hook's name).
    answer = get(master, "/healthz", "10-0-0-7.internal:8010")
    case.check(answer.status == 200, f"/healthz with another Host: 200 ({answer})")
    body = case.repo.push_payload("feature/host", harness.ZERO, case.repo.branch(
        "feature/host", ["host.txt"]), "host")
    signature = "sha256=" + hmac.new(case.webhook_secret.encode(), body,
                                     hashlib.sha256).hexdigest()
    hook = exchange(master, (
        "POST /change_hook/github HTTP/1.1\r\nHost: hooks.tunnel.example\r\n"
        "Content-Type: application/json\r\nX-GitHub-Event: push\r\n"
        f"X-GitHub-Delivery: {uuid.uuid4()}\r\nX-Hub-Signature-256: {signature}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    case.check(hook.status == 200, f"a signed webhook with another Host: 200 ({hook})")
    # A refused Host before a body: the body is not read (the connection ends).
    refused = exchange(master, (
        "POST /api/v1/builders/tests/force HTTP/1.1\r\nHost: evil.example\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}").encode())
    case.check(refused.status == 421 and refused.header("Connection") == "close",
               f"a force with another Host: 421, connection closed ({refused})")


def transfer_codings(case, master):
    before = master.all_requests()
    auth = "Basic " + __import__("base64").b64encode(
        f"{case.auth[0]}:{case.auth[1]}".encode()).decode()
    for coding, body in [("gzip", b"\x1f\x8b\x08\x00"), ("gzip, chunked", b"2\r\n{}\r\n0\r\n\r\n"),
                         ("x-custom", b"{}")]:
        length = "" if "chunked" in coding else f"Content-Length: {len(body)}\r\n"
        answer = exchange(master, (
            f"POST /api/v1/builders/tests/force HTTP/1.1\r\nHost: 127.0.0.1:{master.web}\r\n"
            f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: {coding}\r\n{length}\r\n").encode() + body)
        case.check(answer.status == 501 and answer.header("Connection") == "close" and
                   b"transfer coding" in answer.body,
                   f"Transfer-Encoding: {coding}: 501 and close ({answer})")
    case.check(master.all_requests() == before, "no request was stored by them")
    # chunked still works.
    answer = exchange(master, (
        f"POST /api/v1/builders/tests/force HTTP/1.1\r\nHost: 127.0.0.1:{master.web}\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n").encode())
    case.check(answer.status == 202, f"Transfer-Encoding: chunked: 202 ({answer})")


def security_headers(case, master):
    strict = "default-src 'none'; frame-ancestors 'none'"
    for path, accept in [("/api/v1/builders/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "*/*"),
                         ("/api/v1/nothing/<b>", "application/json"),
                         ("/api/v1/builders", "application/json"),
                         ("/badge/tests.svg", "*/*"), ("/static/app.js", "*/*"),
                         ("/healthz", "*/*"), ("/results/", "text/html")]:
        answer = get(master, path, accept=accept)
        case.check(answer.header("X-Content-Type-Options") == "nosniff" and
                   answer.all("Content-Security-Policy") == [strict],
                   f"GET {path} ({answer.status}): nosniff and {strict!r} "
                   f"({answer.all('Content-Security-Policy')})")
    answer = get(master, "/api/v1/builders/%3Cscript%3E", accept="*/*")
    case.check(answer.status == 404 and b"<script>" in answer.body and
               answer.header("Content-Type").startswith("application/json"),
               f"the JSON 404 echoes the path (now harmless: {answer})")
    for path in ["/", "/workers", "/login", "/builders/tests"]:
        answer = get(master, path, accept="text/html")
        policies = answer.all("Content-Security-Policy")
        case.check(answer.status == 200 and len(policies) == 1 and
                   "script-src 'self'" in policies[0] and
                   answer.all("X-Content-Type-Options") == ["nosniff"],
                   f"GET {path}: the page's own policy, once ({policies})")
    # A server-level error (no route involved) carries them too.
    answer = exchange(master, b"this is not http\r\n\r\n")
    case.check(answer.status == 400 and answer.header("X-Content-Type-Options") == "nosniff",
               f"a malformed request's 400: nosniff ({answer})")
    # A build's HTML report is sandboxed, not blanked.
    results = os.path.join(master.data_dir(), "results", "tests", "master", "1")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, "report.html"), "w") as out:
        out.write("<html><script>document.title='x'</script></html>")
    answer = get(master, "/results/tests/master/1/report.html", accept="text/html")
    policies = answer.all("Content-Security-Policy")
    case.check(answer.status == 200 and len(policies) == 1 and policies[0].startswith("sandbox")
               and "allow-same-origin" not in policies[0],
               f"a build's HTML file under /results: sandboxed ({policies})")


def locations(case, master):
    nexts = {
        "/builders/tests?branch=feature/a b": "/builders/tests?branch=feature/a%20b",
        "/builders/t\u00e9st?x=\u2603": "/builders/t%C3%A9st?x=%E2%98%83",
        "/builds/1?q=100%": "/builds/1?q=100%25",
        "/builds/1?q=%41%2f\"<>": "/builds/1?q=%41%2f%22%3C%3E",
    }
    for next_path, expected in nexts.items():
        form = urllib.parse.urlencode({"user": case.auth[0], "password": case.auth[1],
                                       "next": next_path}).encode()
        answer = exchange(master, (
            f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{master.web}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n").encode() + form)
        location = answer.header("Location")
        case.check(answer.status == 303 and location == expected,
                   f"login with next={next_path!r}: 303 to {expected!r} ({answer.status}, "
                   f"{location!r})")
    # A control character never reaches a Location (the login page's own fallback: /).
    form = urllib.parse.urlencode({"user": case.auth[0], "password": case.auth[1],
                                   "next": "/x\r\nSet-Cookie: a=b"}).encode()
    answer = exchange(master, (
        f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{master.web}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(form)}\r\nConnection: close\r\n\r\n").encode() + form)
    case.check(answer.status == 303 and answer.header("Location") == "/" and
               len(answer.all("Set-Cookie")) == 1,
               f"next with CR LF: 303 to / and one cookie ({answer})")


def not_found_pages(case, master):
    answer = get(master, "/no/such/<page>", accept="text/html,application/xhtml+xml")
    body = answer.body.decode(errors="replace")
    case.check(answer.status == 404 and answer.header("Content-Type").startswith("text/html") and
               "<!DOCTYPE html>" in body and 'href="/workers"' in body and
               "/no/such/&lt;page&gt;" in body and "<page>" not in body,
               f"a browser's unknown path: an HTML 404 in the site's frame, the path escaped "
               f"({answer})")
    for accept in ["application/json", "*/*"]:
        answer = get(master, "/no/such/page", accept=accept)
        try:
            error = json.loads(answer.body)["error"]
        except (ValueError, KeyError):
            error = None
        case.check(answer.status == 404 and error == "no such page: /no/such/page",
                   f"Accept {accept}: the JSON 404 ({answer})")
    answer = get(master, "/api/v1/nothing", accept="text/html")
    case.check(answer.status == 404 and b"in the API" in answer.body,
               f"an unknown API path stays JSON for a browser too ({answer})")


def main(case):
    master = case.start_master(config(case))
    hosts(case, master)
    transfer_codings(case, master)
    security_headers(case, master)
    locations(case, master)
    not_found_pages(case, master)
    case.check(master.get("/healthz")["status"] == "ok", "the master is still up")


if __name__ == "__main__":
    harness.run(main)
