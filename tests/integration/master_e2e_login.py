#!/usr/bin/env python3
"""The web UI's logins and forms (issue 20) against a real master: users with password hashes
made by `ci-master hash-password` beside the old plain user; wrong logins rate limited (the wait
grows) and logged once per interval with a count; a login sets a session cookie (HttpOnly,
SameSite=Strict); the force, cancel and stop forms work with the session and its CSRF token,
answer 303 back to the page, and record the logged-in user; a forged or missing token and a
cross-site Origin are refused and create nothing; after logout the session is dead; the JSON
API keeps HTTP basic for a hashed user; with `auth.view: login` pages redirect to the login
page and the read API wants a login, while /healthz and /login stay open; a restart logs
everyone out."""

import base64
import http.client
import re
import subprocess
import time
import urllib.parse

import master_harness as harness


class Browser:
    """A minimal browser: form posts with its cookie, no redirects followed."""

    def __init__(self, master):
        self.master = master
        self.cookie = None

    def request(self, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.master.web, timeout=30)
        headers = dict(headers or {})
        if self.cookie:
            headers.setdefault("Cookie", f"libci_session={self.cookie}")
        if body is not None and not isinstance(body, bytes):
            body = urllib.parse.urlencode(body, doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = (response.status, dict((k.lower(), v) for k, v in response.getheaders()),
                  response.read().decode(errors="replace"))
        connection.close()
        return answer

    def post(self, path, fields, headers=None):
        return self.request("POST", path, fields, headers)

    def get(self, path, headers=None):
        return self.request("GET", path, None, headers)


def hash_password(password):
    """The hash `ci-master hash-password` prints for `password` given on stdin."""
    done = subprocess.run([harness.MASTER, "hash-password"], input=password + "\n",
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def csrf_of(page):
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    return found.group(1) if found else None


def main(case):
    alice_password = "alice-" + case.auth[1]
    case.secrets.append(alice_password)
    alice_hash = hash_password(alice_password)
    case.check(alice_hash.startswith("$scrypt$ln=15,r=8,p=1$"),
               f"hash-password prints a scrypt hash ({alice_hash[:24]}...)")
    case.secrets.append(alice_hash)
    users = f"""    users:
      - {{user: alice, password_hash: '{alice_hash}'}}
"""
    old_auth = f'auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}\n'
    new_auth = f'auth:\n    user: {case.auth[0]}\n    password: "{case.auth[1]}"\n{users}'
    text = case.standard_config()
    assert old_auth in text
    config = case.write_config(text.replace(old_auth, new_auth))
    checked = subprocess.run([harness.MASTER, "check-config", config], capture_output=True,
                             text=True, timeout=60)
    case.check(checked.returncode == 0 and "auth.password: a plain password" in checked.stdout +
               checked.stderr, "check-config accepts the config and warns about the plain "
               f"password ({checked.returncode}: {checked.stdout + checked.stderr!r})")
    master = case.start_master(config)
    start_log = open(f"{case.tmp}/master-1.log").read()
    case.check("auth.password: the password of admin is plain text" in start_log,
               "the master warns at start about the plain password")
    browser = Browser(master)
    host = f"127.0.0.1:{master.web}"
    builder_page = f"http://{host}/builders/tests"

    status, headers, page = browser.get("/login?next=/builders/tests")
    case.check(status == 200 and headers["content-type"].startswith("text/html") and
               'name="next" value="/builders/tests"' in page and
               "frame-ancestors 'none'" in headers.get("content-security-policy", ""),
               f"GET /login: the login page, next kept ({status})")
    status, headers, page = browser.get("/login?next=%22%3E%3Cscript%3E")
    case.check("<script>" not in page and "&quot;&gt;&lt;script&gt;" not in page,
               "a hostile next is not reflected into the page")

    # Wrong passwords: 5 free, then a wait that doubles.
    statuses = []
    for _ in range(6):
        status, headers, _ = browser.post("/login", {"user": "alice", "password": "wrong",
                                                     "next": "/"})
        statuses.append(status)
    case.check(statuses == [403] * 6, f"six wrong logins: 403 each ({statuses})")
    status, headers, _ = browser.post("/login", {"user": "alice", "password": alice_password})
    case.check(status == 429 and headers.get("retry-after") == "1",
               f"then even the right password waits: 429, Retry-After 1 ({status}, "
               f"{headers.get('retry-after')})")
    # Counted per (address, user): another user from this address is not made to wait.
    status, _, _ = browser.post("/login", {"user": "nobody", "password": "wrong"})
    case.check(status == 403, f"an unknown user meanwhile: 403, not 429 ({status})")
    time.sleep(1.1)
    status, _, _ = browser.post("/login", {"user": "alice", "password": "wrong"})
    case.check(status == 403, f"after the wait, a seventh wrong one: 403 ({status})")
    status, headers, _ = browser.post("/login", {"user": "alice", "password": alice_password})
    case.check(status == 429 and headers.get("retry-after") == "2",
               f"the wait grows: 429, Retry-After 2 ({status}, {headers.get('retry-after')})")
    time.sleep(2.1)
    log = open(f"{case.tmp}/master-1.log").read()
    lines = [l for l in log.splitlines() if "wrong user or password (API or login)" in l]
    # The first at once, the seven after it held back (the next line comes after 10 s).
    case.check(len(lines) == 1 and "): from 127.0.0.1 (its failure 1 in a row)" in lines[0],
               f"eight failures are logged once, the first at once ({lines})")

    # The right password: a session cookie, 303 to next.
    status, headers, _ = browser.post("/login", {"user": "alice", "password": alice_password,
                                                 "next": "/builders/tests"})
    cookie = headers.get("set-cookie", "")
    case.check(status == 303 and headers.get("location") == "/builders/tests",
               f"login: 303 to next ({status} {headers.get('location')})")
    found = re.match(r"libci_session=([0-9a-f]{64}); Path=/; HttpOnly; SameSite=Strict; "
                     r"Max-Age=\d+$", cookie)
    case.check(bool(found), f"the cookie: 256-bit id, HttpOnly, SameSite=Strict ({cookie})")
    browser.cookie = found.group(1) if found else None
    status, _, page = browser.get("/login")
    csrf = csrf_of(page)
    case.check("logged in as <bdi>alice</bdi>" in page and csrf is not None,
               "the login page knows alice and gives her form a CSRF token")

    form = {"branch": "feature/form", "reason": "e2e form", "csrf": csrf,
            "properties": "color=blue\r\nsize=2\r\n"}
    before = len(master.all_requests())
    # Refused: forged token, no token, another site, a JSON body, no session.
    status, _, page = browser.post("/builders/tests/force", {**form, "csrf": "0" * 64})
    case.check(status == 403 and "csrf" in page, f"a forged csrf token: 403 ({status})")
    without = dict(form)
    del without["csrf"]
    status, _, _ = browser.post("/builders/tests/force", without)
    case.check(status == 403, f"no csrf token: 403 ({status})")
    status, _, _ = browser.post("/builders/tests/force", {**form, "csrf": [csrf, csrf]})
    case.check(status == 400, f"two csrf fields: 400 ({status})")
    status, _, _ = browser.post("/builders/tests/force", form,
                                {"Origin": "http://evil.example"})
    case.check(status == 403, f"Origin of another site: 403 ({status})")
    status, _, _ = browser.post("/builders/tests/force", form, {"Sec-Fetch-Site": "cross-site"})
    case.check(status == 403, f"Sec-Fetch-Site: cross-site: 403 ({status})")
    status, _, _ = browser.post("/builders/tests/force", form,
                                {"Content-Type": "text/plain"})
    case.check(status == 415, f"a body that is not a form: 415 ({status})")
    anonymous = Browser(master)
    status, headers, _ = anonymous.post("/builders/tests/force", form,
                                        {"Referer": builder_page})
    case.check(status == 303 and
               headers.get("location") == "/login?next=%2Fbuilders%2Ftests",
               f"no session: 303 to the login page ({status} {headers.get('location')})")
    case.check(len(master.all_requests()) == before, "the refused forms queued nothing")

    # The force form: 303 back to the page, a request recorded as alice's.
    status, headers, _ = browser.post("/builders/tests/force", form,
                                      {"Origin": f"http://{host}", "Referer": builder_page,
                                       "Sec-Fetch-Site": "same-origin"})
    case.check(status == 303 and headers.get("location") == "/builders/tests",
               f"force form: 303 to the builder page ({status} {headers.get('location')})")
    pending = master.requests()
    forced = [r for r in pending if r["branch"] == "feature/form"]
    case.check(len(forced) == 1 and "(by alice)" in forced[0]["reason"] and
               "e2e form" in forced[0]["reason"] and
               forced[0]["properties"] == {"color": "blue", "size": "2"},
               f"the forced request, by alice, with its properties ({forced})")

    # Several builders at once; an unknown one forces nothing.
    status, _, _ = browser.post("/force", {"builder": ["tests", "nope"], "csrf": csrf})
    case.check(status == 400, f"/force with an unknown builder: 400 ({status})")
    status, headers, _ = browser.post("/force", {"builder": ["tests"], "csrf": csrf,
                                                 "branch": "feature/many"})
    case.check(status == 303 and headers.get("location") == "/",
               f"/force: 303 home ({status} {headers.get('location')})")

    # Cancel through the form.
    if forced:
        request_id = forced[0]["id"]
        status, headers, _ = browser.post(f"/requests/{request_id}/cancel", {"csrf": csrf})
        case.check(status == 303 and headers.get("location") == "/builders/tests",
                   f"cancel form: 303 to the builder ({status} {headers.get('location')})")
        cancelled = [r for r in master.requests("cancelled") if r["id"] == request_id]
        case.check(len(cancelled) == 1, "the request is cancelled")
        status, _, _ = browser.post(f"/requests/{request_id}/cancel", {"csrf": csrf})
        case.check(status == 409, f"cancelling it again: 409 ({status})")
    for r in master.requests():
        browser.post(f"/requests/{r['id']}/cancel", {"csrf": csrf})

    # The JSON API keeps HTTP basic, for the hashed user too.
    status, answer = master.post("/api/v1/builders/tests/force",
                                 b'{"branch": "feature/api", "reason": "api"}',
                                 auth=("alice", alice_password))
    case.check(status == 202, f"the API with alice's password: 202 ({status} {answer})")
    api = [r for r in master.requests() if r["branch"] == "feature/api"]
    case.check(len(api) == 1 and "(by alice)" in api[0]["reason"],
               f"the API records alice ({api})")
    status, answer = master.post("/api/v1/builders/tests/force", b'{}',
                                 auth=("alice", "wrong"))
    case.check(status == 401, f"the API with a wrong password: 401 ({status})")
    for r in master.requests():
        master.post(f"/api/v1/buildrequests/{r['id']}/cancel", auth=case.auth)

    # Pause and resume a worker through the workers page's forms.
    case.start_workers(master, 1)
    status, headers, _ = browser.post("/workers/remote/0/pause", {"csrf": csrf})
    case.check(status == 303 and headers.get("location") == "/workers",
               f"pause form: 303 to the workers page ({status} {headers.get('location')})")
    case.check(master.get("/api/v1/workers/remote/0").get("paused") is True,
               "the worker is paused")
    _, _, page = browser.get("/workers")
    offered = set(re.findall(r'action="/workers/remote(?:/|%2F)0/(\w+)"', page))
    case.check(offered == {"resume", "shutdown"},
               f"the workers page offers what undoes the pause, not the pause again ({offered})")
    status, _, _ = browser.post("/workers/remote/0/explode", {"csrf": csrf})
    case.check(status == 404, f"an unknown worker action: 404 ({status})")
    status, headers, _ = browser.post("/workers/remote/0/resume", {"csrf": csrf})
    case.check(status == 303 and master.get("/api/v1/workers/remote/0").get("paused") is False,
               f"resume form: 303, the worker is not paused ({status})")

    # Stop a running build through the build page's form.
    tip, build = case.slow_build(master)
    status, headers, _ = browser.post(f"/builds/{build['id']}/stop", {"csrf": csrf})
    case.check(status == 303 and headers.get("location") == f"/builds/{build['id']}",
               f"stop form: 303 to the build page ({status} {headers.get('location')})")
    ended = harness.wait_for("the stopped build to end", lambda: master.finished_build(tip))
    case.check(ended["result"] == "cancelled", f"the build ended cancelled ({ended['result']})")
    log = open(f"{case.tmp}/master-1.log").read()
    case.check(re.search(rf"build {build['id']}.*alice|alice.*build {build['id']}", log)
               is not None, "the master's log says alice stopped it")

    # Logout: the session is dead.
    old_cookie = browser.cookie
    status, headers, _ = browser.post("/logout", {"csrf": csrf})
    case.check(status == 303 and "Max-Age=0" in headers.get("set-cookie", ""),
               f"logout: 303, the cookie removed ({status} {headers.get('set-cookie')})")
    status, headers, _ = browser.post("/builders/tests/force", form)
    case.check(status == 303 and headers.get("location", "").startswith("/login"),
               f"the old session no longer forces: 303 to login ({status})")
    status, _, page = browser.get("/login")
    case.check("logged in" not in page, "the login page no longer knows alice")

    # auth.view: login, after a restart (which ends every session).
    browser.cookie = None
    status, headers, _ = browser.post("/login", {"user": case.auth[0], "password": case.auth[1]})
    case.check(status == 303, f"the old plain user logs in too ({status})")
    plain_cookie = re.match(r"libci_session=([0-9a-f]{64})", headers.get("set-cookie", ""))
    # A login from a browser that has a session ends that session (a re-login).
    browser.cookie = plain_cookie.group(1) if plain_cookie else None
    status, headers, _ = browser.post("/login", {"user": "alice", "password": alice_password})
    relogin = re.match(r"libci_session=([0-9a-f]{64})", headers.get("set-cookie", ""))
    _, _, page = browser.get("/login")
    case.check(status == 303 and relogin is not None and "logged in" not in page,
               f"a re-login ends the browser's old session ({status})")
    browser.cookie = relogin.group(1) if relogin else None
    _, _, page = browser.get("/login")
    case.check("logged in as <bdi>alice</bdi>" in page, "the new session is alice's")
    master.kill()
    config = case.write_config(text.replace(old_auth, new_auth + "    view: login\n"))
    master.start()
    viewer = Browser(master)
    status, headers, _ = viewer.get("/api/v1/builders?x=1", {"Accept": "text/html"})
    case.check(status == 303 and
               headers.get("location") == "/login?next=%2Fapi%2Fv1%2Fbuilders%3Fx%3D1",
               f"view: login: a page redirects to the login page ({status} "
               f"{headers.get('location')})")
    status, headers, _ = viewer.get("/", {"Accept": "text/html,application/xhtml+xml"})
    case.check(status == 303 and headers.get("location") == "/login?next=%2F",
               f"view: login: the home page redirects to the login page ({status} "
               f"{headers.get('location')})")
    status, headers, page = viewer.get("/login?next=%2F")
    style = re.search(r'href="(/static/style\.css[^"]*)"', page)
    case.check(status == 200 and style is not None, f"the login page links its style ({status})")
    if style:
        status, _, _ = viewer.get(style.group(1).replace("&amp;", "&"))
        case.check(status == 200, f"its style sheet is served without a login ({status})")
    status, headers, _ = viewer.get("/api/v1/builders")
    case.check(status == 401 and "basic" in headers.get("www-authenticate", "").lower(),
               f"view: login: the read API wants a login (401) ({status})")
    status, _, _ = viewer.get("/healthz")
    case.check(status == 200, f"/healthz stays open ({status})")
    status, _, _ = viewer.get("/login")
    case.check(status == 200, f"/login stays open ({status})")
    token = base64.b64encode(f"alice:{alice_password}".encode()).decode()
    status, _, _ = viewer.get("/api/v1/builders", {"Authorization": "Basic " + token})
    case.check(status == 200, f"view: login: HTTP basic reads the API ({status})")
    if plain_cookie:
        viewer.cookie = plain_cookie.group(1)
        status, _, _ = viewer.get("/api/v1/builders")
        case.check(status == 401, f"a session from before the restart is gone ({status})")
    viewer.cookie = None
    status, headers, _ = viewer.post("/login", {"user": "alice", "password": alice_password})
    viewer.cookie = re.match(r"libci_session=([0-9a-f]{64})",
                             headers.get("set-cookie", "")).group(1)
    status, _, _ = viewer.get("/api/v1/builders")
    case.check(status == 200, f"view: login: a session reads the API ({status})")


if __name__ == "__main__":
    harness.run(main)
