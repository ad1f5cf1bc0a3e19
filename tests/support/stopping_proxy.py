#!/usr/bin/env python3
"""An HTTP proxy for tests that stands for a server stopping in the middle of a job.

    stopping_proxy.py UPSTREAM_PORT PUTS

Listens on 127.0.0.1 on a port the kernel picks and prints "listening on 127.0.0.1:PORT".
Forwards every request unchanged (Host header included, so signatures still hold) to
127.0.0.1:UPSTREAM_PORT until it has forwarded PUTS PUT requests; from then on it closes every
connection without an answer, as a stopped server would.
"""
import http.client
import http.server
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        server = self.server
        with server.lock:
            stopped = server.puts >= server.limit
            if self.command == "PUT" and not stopped:
                server.puts += 1
        if stopped:
            self.close_connection = True
            self.connection.close()
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection("127.0.0.1", server.upstream, timeout=30)
        upstream.request(self.command, self.path, body=body, headers=dict(self.headers))
        response = upstream.getresponse()
        data = response.read()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = forward


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.upstream = int(sys.argv[1])
    server.limit = int(sys.argv[2])
    server.puts = 0
    server.lock = threading.Lock()
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
