#!/usr/bin/env python3
"""The HTML checker (html_check.py) finds what it claims to: each broken page below has exactly
the problem named beside it, the good page none; the crawler, run against a small local server,
reports a link that answers 404, an asset from another origin, a POST form without `csrf`, and
follows a GET form's action."""

import http.server
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import html_check  # noqa: E402 - beside this file

GOOD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>t</title>
<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js"></script></head>
<body><p>a<br>b<img src="/static/x.png" alt=""></p>
<form method="post" action="/builds/1/stop"><input type="hidden" name="csrf" value="t">
<button type="submit">stop</button></form>
<pre id="step-1-1">&lt;script&gt;alert(1)&lt;/script&gt;</pre>
<script>if (1 < 2 && "</div>") {}</script></body></html>
"""

BROKEN = {
    "no doctype": ("<html><body></body></html>", "before <!DOCTYPE html>"),
    "unclosed div": ("<!DOCTYPE html><html><body><div></body></html>",
                     "</body> while <div> of line 1 is open"),
    "unclosed at the end": ("<!DOCTYPE html><html><body><p>text</body>",
                            "</body> while <p> of line 1 is open"),
    "never closed": ("<!DOCTYPE html><html><body>", "<body> of line 1 never closed"),
    "misnested": ("<!DOCTYPE html><html><body><b><i>x</b></i></body></html>",
                  "</b> while <i> of line 1 is open"),
    "stray end tag": ("<!DOCTYPE html><html><body></p></body></html>", "</p> closes nothing"),
    "self-closed div": ("<!DOCTYPE html><html><body><div/></body></html>", "<div/> self-closed"),
    "end tag of a void": ("<!DOCTYPE html><html><body><br></br></body></html>",
                          "</br> (a void element has no end tag)"),
    "duplicate id": ('<!DOCTYPE html><html><body><a id="x"></a><a id="x"></a></body></html>',
                     "id 'x' again"),
    "nested forms": ("<!DOCTYPE html><html><body><form><form></form></form></body></html>",
                     "<form> inside a <form>"),
}


FAILURES = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message)
    if not condition:
        FAILURES.append(message)


def self_check():
    problems, links, forms = html_check.check_html(GOOD)
    check(problems == [], f"a good page has no problem ({problems})")
    check(("href", "/static/style.css", "link", "stylesheet") in links and
          ("src", "/static/app.js", "script", "") in links, f"its links are found ({links})")
    check(forms and forms[0]["action"] == "/builds/1/stop" and forms[0]["method"] == "post" and
          forms[0]["fields"].get("csrf") == "t", f"its form is found ({forms})")
    for name, (text, expected) in BROKEN.items():
        problems, _, _ = html_check.check_html(text)
        check(any(expected in p for p in problems), f"{name}: {expected!r} in {problems}")


PAGES = {
    "/": ('<!DOCTYPE html><html><body><a href="/ok">ok</a> <a href="/missing">m</a>'
          '<a href="https://example.org/x">out</a><img src="https://cdn.example.org/i.png">'
          '<form method="post" action="/force"><input name="branch"></form>'
          '<form method="get" action="/search"><input name="q"></form></body></html>'),
    "/ok": '<!DOCTYPE html><html><body><a href="/">home</a><a href="/raw">raw</a></body></html>',
    "/raw": "plain text",
    "/search": "<!DOCTYPE html><html><body><p>found</p></body></html>",
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if path not in PAGES:
            self.send_error(404)
            return
        body = PAGES[path].encode()
        self.send_response(200)
        self.send_header("Content-Type",
                         "text/plain" if path == "/raw" else "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def crawl_check():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    crawler = html_check.Crawler(base).crawl(["/"])
    server.shutdown()
    problems = [f"{url[len(base):]}: {p}" for url, p in crawler.problems]
    print("\n".join(problems))
    check(crawler.fetched.get(base + "/missing") == 404 and
          any(p.startswith("/missing: GET answered 404") for p in problems),
          "a link that answers 404 is reported")
    check(any("cdn.example.org" in p and "another origin" in p for p in problems),
          "an image from another origin is reported")
    check(not any("example.org/x" in p for p in problems),
          "a link (<a>) to another site is not fetched nor reported")
    check(any("/force" in p and "no csrf field" in p for p in problems),
          "a POST form without csrf is reported")
    check(crawler.fetched.get(base + "/search") == 200 and base + "/search" in crawler.pages,
          "a GET form's action is fetched and checked")
    check(crawler.fetched.get(base + "/raw") == 200 and base + "/raw" not in crawler.pages,
          "a plain-text link is fetched, not parsed")
    check(len(problems) == 3, f"nothing else is reported ({len(problems)} problems)")


if __name__ == "__main__":
    self_check()
    crawl_check()
    print(f"html-check: {len(FAILURES)} failure(s)")
    sys.exit(1 if FAILURES else 0)
