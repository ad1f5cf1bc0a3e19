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

from fake_service import FakeService

STATES = {"pending", "success", "failure", "error"}


class FakeGithub(FakeService):
    def __init__(self, token, repository, known_sha):
        super().__init__()
        self.token, self.repository, self.known_sha = token, repository, known_sha
        self.statuses = []

    def handle(self, method, path, headers, raw):
        def answer(code, body, extra=None, reason=None):
            return code, body, extra, reason or body.get("message", "")

        if method != "POST":
            return answer(404, {"message": "Not Found"})
        if self.mode == "down":
            return answer(503, {"message": "Service Unavailable"}, reason="down")
        if self.mode == "ratelimit":
            return answer(403, {"message": "You have exceeded a secondary rate limit"},
                          {"Retry-After": "1"}, reason="rate limit")
        auth = headers.get("Authorization", "")
        if auth not in (f"token {self.token}", f"Bearer {self.token}"):
            return answer(401, {"message": "Requires authentication"})
        match = re.fullmatch(r"(?:/api/v3)?/repos/([^/]+/[^/]+)/statuses/([0-9a-f]{40})", path)
        if not match or match.group(1) != self.repository:
            return answer(404, {"message": "Not Found"})
        try:
            body = json.loads(raw)
        except ValueError:
            return answer(400, {"message": "Problems parsing JSON"})
        problem = validate(body)
        if problem:
            return answer(422, {"message": "Validation Failed", "errors": [problem]},
                          reason=problem)
        sha = match.group(2)
        if not self.known_sha(sha):
            return answer(422, {"message": f"No commit found for SHA: {sha}"})
        with self.lock:
            self.statuses.append(dict(body, sha=sha))
            number = len(self.statuses)
        return answer(201, dict(body, id=number))

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
