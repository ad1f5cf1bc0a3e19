"""A fake EC2 instance metadata service (IMDSv2) on 127.0.0.1 and a free port, checking what the
real one checks: a session token from PUT /latest/api/token (which needs the header
X-aws-ec2-metadata-token-ttl-seconds, 1-21600) on every GET (X-aws-ec2-metadata-token), else 401.
Serves /latest/meta-data/spot/instance-action and
/latest/meta-data/events/recommendations/rebalance: 404 until the test sets `action` or
`rebalance` (a dict, served as JSON). `revoke()` invalidates every token given so far (as
their expiry would); the counts say what the client did."""

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ACTION = "/latest/meta-data/spot/instance-action"
REBALANCE = "/latest/meta-data/events/recommendations/rebalance"


class FakeImds:
    def __init__(self):
        self.tokens = set()
        self.action = None
        self.rebalance = None
        self.puts = 0
        self.unauthorized = 0  # GETs answered 401
        self.polls = 0  # GETs of instance-action with a valid token
        self.served_notice_at = None  # time.monotonic() of the first notice served
        self.lock = threading.Lock()
        self.server = None
        self.url = None

    def revoke(self):
        with self.lock:
            self.tokens.clear()

    def answer(self, handler, status, body=b"", content_type="text/plain"):
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def put(self, handler):
        ttl = handler.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if handler.path != "/latest/api/token":
            return self.answer(handler, 404)
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self.answer(handler, 400)
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.puts += 1
            self.tokens.add(token)
        self.answer(handler, 200, token.encode())

    def get(self, handler):
        import time
        with self.lock:
            valid = handler.headers.get("X-aws-ec2-metadata-token") in self.tokens
            if not valid:
                self.unauthorized += 1
        if not valid:
            return self.answer(handler, 401)
        notice = None
        if handler.path == ACTION:
            with self.lock:
                self.polls += 1
            notice = self.action
        elif handler.path == REBALANCE:
            notice = self.rebalance
        else:
            return self.answer(handler, 404)
        if notice is None:
            return self.answer(handler, 404, b"Not Found")
        with self.lock:
            if self.served_notice_at is None:
                self.served_notice_at = time.monotonic()
        self.answer(handler, 200, json.dumps(notice).encode(), "application/json")

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_PUT(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fake.put(self)

            def do_GET(self):  # noqa: N802
                fake.get(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
