"""A local Zulip message API for tests: checks what Zulip checks, records what it accepts.

    fake = FakeZulip(email="bot@example.org", api_key="...", streams={"builds", "critical"})
    fake.start()             # 127.0.0.1, a free port: fake.url (zulip.site)
    fake.mode = "down"       # "up" (default), "down" (503)
    fake.messages            # accepted messages, in arrival order: dicts type, to, topic, content
    fake.refused             # (status code, Zulip's error code) of every request refused

Checks, as a Zulip server does for `POST /api/v1/messages`: HTTP basic authentication with the
bot's e-mail address and API key (401 UNAUTHORIZED otherwise), a form-encoded body
(`application/x-www-form-urlencoded`) with `type` `stream`, `to` an existing stream, a non-empty
`topic` of at most 60 characters and a non-empty `content` of at most 10000 (400 BAD_REQUEST or
STREAM_DOES_NOT_EXIST otherwise, with Zulip's error JSON: `{"result": "error", "msg": ...,
"code": ...}`). Any other path or method: 404.
"""

import base64
import urllib.parse

from fake_service import FakeService


class FakeZulip(FakeService):
    def __init__(self, email, api_key, streams):
        super().__init__()
        self.email, self.api_key, self.streams = email, api_key, set(streams)
        self.messages = []

    def handle(self, method, path, headers, raw):
        def error(code, msg, error_code="BAD_REQUEST", **extra):
            return code, dict({"result": "error", "msg": msg, "code": error_code}, **extra), \
                None, error_code

        if self.mode == "down":
            return error(503, "Service Unavailable", "SERVICE_UNAVAILABLE")
        if method != "POST" or path != "/api/v1/messages":
            return error(404, "Not Found", "NOT_FOUND")
        expected = "Basic " + base64.b64encode(f"{self.email}:{self.api_key}".encode()).decode()
        if headers.get("Authorization", "") != expected:
            return error(401, "Invalid API key", "UNAUTHORIZED")
        if headers.get("Content-Type", "").split(";")[0].strip() != \
                "application/x-www-form-urlencoded":
            return error(400, "Expected a form-encoded body")
        try:
            form = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True,
                                         strict_parsing=True)
        except (ValueError, UnicodeDecodeError):
            return error(400, "Malformed form body")
        fields = {}
        for name in ("type", "to", "topic", "content"):
            values = form.get(name)
            if not values:
                return error(400, f"Missing '{name}' argument", "REQUEST_VARIABLE_MISSING",
                             var_name=name)
            fields[name] = values[0]
        if fields["type"] != "stream":
            return error(400, "Invalid message type")
        if fields["to"] not in self.streams:
            return error(400, f"Stream '{fields['to']}' does not exist", "STREAM_DOES_NOT_EXIST",
                         stream=fields["to"])
        if not fields["topic"].strip() or len(fields["topic"]) > 60:
            return error(400, "Invalid topic")
        if not fields["content"].strip() or len(fields["content"]) > 10000:
            return error(400, "Invalid content")
        with self.lock:
            self.messages.append(fields)
            number = len(self.messages)
        return 200, {"result": "success", "msg": "", "id": number}, None, ""

    def accepted(self, stream=None, topic=None):
        """Accepted messages, optionally of one stream and topic."""
        with self.lock:
            return [m for m in self.messages if (stream is None or m["to"] == stream) and
                    (topic is None or m["topic"] == topic)]
