"""A local GitHub commit-status API for tests: checks what GitHub checks, records what it accepts.

    fake = FakeGithub(token="...", repository="libci/demo", known_sha=lambda sha: ...)
    fake.start()             # 127.0.0.1, a free port: fake.url
    fake.mode = "down"       # "up" (default), "down" (503), "ratelimit" (403 + Retry-After: 1)
    fake.statuses            # accepted statuses, in arrival order (dicts with sha and the JSON)
    fake.refused             # (status code, reason) of every request answered with an error

Checks, as api.github.com does for `POST /repos/OWNER/REPO/statuses/SHA`: an `Authorization`
header `token TOKEN` or `Bearer TOKEN` (401 otherwise), the repository (404), a JSON object body
with `state` one of pending/success/failure/error, `target_url` (optional) an http(s) URL,
`description` (optional) a string of at most 140 characters and `context` (optional) a string
(422 otherwise), and a commit the repository has (422 "No commit found for SHA").
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATES = {"pending", "success", "failure", "error"}


class FakeGithub:
    def __init__(self, token, repository, known_sha):
        self.token, self.repository, self.known_sha = token, repository, known_sha
        self.mode = "up"
        self.statuses = []
        self.refused = []
        self.attempts = 0
        self.lock = threading.Lock()
        self.server = None
        self.url = None

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def answer(self, code, body, headers=None, reason=None):
                data = json.dumps(body).encode()
                if code >= 400:
                    with fake.lock:
                        fake.refused.append((code, reason or body.get("message", "")))
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.attempts += 1
                if fake.mode == "down":
                    return self.answer(503, {"message": "Service Unavailable"}, reason="down")
                if fake.mode == "ratelimit":
                    return self.answer(403, {"message": "You have exceeded a secondary rate limit"},
                                       {"Retry-After": "1"}, reason="rate limit")
                auth = self.headers.get("Authorization", "")
                if auth not in (f"token {fake.token}", f"Bearer {fake.token}"):
                    return self.answer(401, {"message": "Requires authentication"})
                match = re.fullmatch(r"(?:/api/v3)?/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})",
                                     self.path)
                if not match or match.group(1) != fake.repository:
                    return self.answer(404, {"message": "Not Found"})
                try:
                    body = json.loads(raw)
                except ValueError:
                    return self.answer(400, {"message": "Problems parsing JSON"})
                problem = validate(body)
                if problem:
                    return self.answer(422, {"message": "Validation Failed", "errors": [problem]},
                                       reason=problem)
                sha = match.group(2)
                if not fake.known_sha(sha):
                    return self.answer(422, {"message": f"No commit found for SHA: {sha}"})
                with fake.lock:
                    fake.statuses.append(dict(body, sha=sha))
                return self.answer(201, dict(body, id=len(fake.statuses)))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def accepted(self, sha=None, context=None):
        """Accepted statuses, optionally of one commit and context, as (state, has target_url)."""
        with self.lock:
            return [(s["state"], bool(s.get("target_url"))) for s in self.statuses
                    if (sha is None or s["sha"] == sha) and
                    (context is None or s.get("context") == context)]


def validate(body):
    """What GitHub's validation would refuse in a status body, or None."""
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    if body.get("state") not in STATES:
        return f"state must be one of {sorted(STATES)}"
    target = body.get("target_url")
    if target is not None and not (isinstance(target, str) and
                                   re.match(r"https?://[^/]+", target)):
        return "target_url must be an http(s) URL"
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 140):
        return "description must be a string of at most 140 characters"
    if "context" in body and not isinstance(body["context"], str):
        return "context must be a string"
    return None
