"""What the local fakes of web services (fake_github.py, fake_zulip.py) share: a threaded HTTP
server on 127.0.0.1 and a free port, a `mode` the test switches, and counts of what it got.

Mode "hang", for every fake: a request is read and then held without an answer (its sender
waits, as it would for a service that stopped answering) until `release()`, then answered 503
(recorded in `refused` as "hung"); `hung` counts the requests held.

A subclass defines `handle(method, path, headers, body) -> (status, JSON body, extra headers,
reason)`; the reason of every answer with status >= 400 is recorded in `refused` with its status.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeService:
    def __init__(self):
        self.mode = "up"
        self.refused = []
        self.attempts = 0
        self.hung = 0
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.server = None
        self.url = None

    def handle(self, method, path, headers, body):
        raise NotImplementedError

    def start(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def serve(self):
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with fake.lock:
                    fake.attempts += 1
                if fake.mode == "hang":
                    with fake.lock:
                        fake.hung += 1
                    fake.released.wait(120)
                    code, body, headers, reason = 503, {"message": "hung"}, None, "hung"
                else:
                    code, body, headers, reason = fake.handle(self.command, self.path,
                                                              self.headers, raw)
                data = json.dumps(body).encode()
                if code >= 400:
                    with fake.lock:
                        fake.refused.append((code, reason))
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    self.close_connection = True  # the sender is gone (a master killed)

            do_GET = do_POST = serve  # noqa: N815 - http.server's naming

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def release(self):
        """Answers the requests held in mode "hang" (503) and stops holding new ones."""
        self.mode = "up"
        self.released.set()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
