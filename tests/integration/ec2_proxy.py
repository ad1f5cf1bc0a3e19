"""A recording, fault-injecting HTTP proxy in front of moto_server's EC2 Query API, shared by
test master-e2e-ec2-faults and bench/ec2/ec2_bench.py.

Every POST is forwarded to moto unchanged (headers included, Host too: moto checks the SigV4
signature, which covers the Host the master signed) unless `decide(call)` returns a fault:

    "500"          answered here with HTTP 500 InternalError; nothing reaches moto
    "throttle"     answered here with 400 RequestLimitExceeded; nothing reaches moto
    "500-after"    forwarded (the instance is made), then answered with HTTP 500
    "lost"         forwarded, then the connection is closed without an answer
    "killed"       as "lost" (the test killed the caller when the call arrived)
    "timeout"      forwarded, then held without an answer until after the client's timeout
    "hang"         held without an answer and never forwarded, until after the client's timeout

RunInstances keeps EC2's idempotency, which moto does not: a request whose ClientToken already
made instances is answered with that first answer again and does not reach moto (EC2 answers
a retried launch with the instances the token already launched, and launches nothing more);
a fault decided for such a retry applies to that answer (its outcome is "replayed (FAULT)").

A RunInstances that made instances whose answer the caller did not get ("500-after", "lost",
"timeout", or a caller that had hung up by the time moto answered) is a leak attempt: recorded
in `leak_attempts` with the instance ids, the worker and class tags and why.
"""

import http.client
import http.server
import select
import socket
import threading
import time
import urllib.parse

ERROR_500 = (b"<Response><Errors><Error><Code>InternalError</Code><Message>injected by the "
             b"test proxy</Message></Error></Errors><RequestID>proxy</RequestID></Response>")
ERROR_THROTTLE = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request "
                  b"limit exceeded (injected by the test proxy)</Message></Error></Errors>"
                  b"<RequestID>proxy</RequestID></Response>")


class Call:
    """One request as the proxy saw it."""

    def __init__(self, arrived, params):
        self.arrived = arrived  # time.monotonic() when its headers had been read
        self.params = params    # the form body, parsed: name -> first value
        self.action = params.get("Action", "?")
        self.fault = None
        self.outcome = None     # what the caller got: "answered", a fault, "replayed"
        self.finished = None    # time.monotonic() when it was answered or dropped
        self.instance_ids = []

    def tags(self):
        """RunInstances' instance tags (TagSpecification.1), as a dict."""
        tags = {}
        for name, value in self.params.items():
            if name.startswith("TagSpecification.1.Tag.") and name.endswith(".Key"):
                tags[value] = self.params.get(name[:-len("Key")] + "Value", "")
        return tags


def instance_ids_of(body):
    """The instance ids of a RunInstancesResponse (a plain text scan: this proxy does not trust
    libci's parser to check libci)."""
    ids, text = [], body.decode("utf-8", "replace")
    start = 0
    while (start := text.find("<instanceId>", start)) != -1:
        end = text.find("</instanceId>", start)
        ids.append(text[start + len("<instanceId>"):end])
        start = end
    return ids


class Ec2Proxy:
    def __init__(self, upstream, decide=None, hold=2.0):
        """`upstream`: moto's URL; `decide(call)`: a fault name or None for each call (called
        under the proxy's lock); `hold`: seconds a "timeout" or "hang" keeps the caller waiting
        (longer than its timeout)."""
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.decide = decide or (lambda call: None)
        self.hold = hold
        self.lock = threading.Lock()
        self.calls = []           # every Call, in arrival order
        self.leak_attempts = []   # dicts: token, worker, class, ids, why
        self.launched = {}        # ClientToken -> the first RunInstances answer that made some
        self.in_flight = {}       # ClientToken -> Event set when its first forward is done
        self.listeners = []       # functions of a Call, told when one arrives
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the http.server API
                proxy.handle(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def busy_seconds(self):
        """Per action: (calls, seconds from arrival to answer, summed)."""
        with self.lock:
            calls = list(self.calls)
        totals = {}
        for call in calls:
            if call.finished is not None:
                count, seconds = totals.get(call.action, (0, 0.0))
                totals[call.action] = (count + 1, seconds + call.finished - call.arrived)
        return totals

    def calls_of(self, action):
        with self.lock:
            return [call for call in self.calls if call.action == action]

    def handle(self, handler):
        call = None
        try:
            call = self.serve(handler)
        finally:
            if call is not None:
                call.finished = time.monotonic()

    def serve(self, handler):
        arrived = time.monotonic()
        body = handler.rfile.read(int(handler.headers.get("Content-Length", 0)))
        params = {name: values[0] for name, values in
                  urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                        keep_blank_values=True).items()}
        call = Call(arrived, params)
        token = params.get("ClientToken", "") if call.action == "RunInstances" else ""
        if token:
            self.wait_first_launch(token)
        with self.lock:
            self.calls.append(call)
            replay = self.launched.get(token) if token else None
            call.fault = self.decide(call)
            listeners = list(self.listeners)
        for listener in listeners:
            listener(call)
        fault = call.fault
        if replay is not None:
            call.instance_ids = instance_ids_of(replay)
            call.outcome = "replayed" + (f" ({fault})" if fault else "")
            if fault in ("500", "500-after"):
                self.answer(handler, 500, ERROR_500)
            elif fault == "throttle":
                self.answer(handler, 400, ERROR_THROTTLE)
            elif fault in ("timeout", "hang"):
                time.sleep(self.hold)
                self.drop(handler)
            elif fault in ("lost", "killed"):
                self.drop(handler)
            else:
                self.answer(handler, 200, replay)
            return call
        if fault == "500":
            call.outcome = fault
            self.answer(handler, 500, ERROR_500)
            return call
        if fault == "throttle":
            call.outcome = fault
            self.answer(handler, 400, ERROR_THROTTLE)
            return call
        if fault == "hang":
            call.outcome = fault
            time.sleep(self.hold)
            self.drop(handler)
            return call
        if token:
            with self.lock:
                done = self.in_flight.setdefault(token, threading.Event())
        try:
            status, answer = self.forward(handler, body)
        finally:
            if token:
                done.set()
        if call.action == "RunInstances" and status == 200:
            call.instance_ids = instance_ids_of(answer)
            with self.lock:
                self.launched.setdefault(token, answer)
        if fault == "500-after":
            self.answer(handler, 500, ERROR_500)
        elif fault in ("lost", "killed"):
            self.drop(handler)
        elif fault == "timeout":
            time.sleep(self.hold)
            self.drop(handler)
        elif self.caller_gone(handler):
            fault = "caller-gone"  # it timed out by itself (a slow moto): the same leak risk
            self.drop(handler)
        else:
            self.answer(handler, status, answer)
        call.outcome = fault or "answered"
        if fault and call.instance_ids:
            tags = call.tags()
            with self.lock:
                self.leak_attempts.append({"token": token, "worker": tags.get("ci:worker", ""),
                                           "class": tags.get("ci:class", ""),
                                           "ids": list(call.instance_ids), "why": fault})
        return call

    def wait_first_launch(self, token):
        """A retry of a launch still at moto waits for its answer, as EC2 never launches twice
        for one ClientToken."""
        with self.lock:
            first = self.in_flight.get(token)
        if first is not None:
            first.wait(120)

    def forward(self, handler, body):
        headers = {name: value for name, value in handler.headers.items()
                   if name.lower() not in ("connection", "keep-alive", "content-length")}
        connection = http.client.HTTPConnection(*self.upstream, timeout=120)
        try:
            connection.request("POST", handler.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    @staticmethod
    def caller_gone(handler):
        """True when the caller closed its end (it stopped waiting for this answer)."""
        sock = handler.connection
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        try:
            return sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    @staticmethod
    def drop(handler):
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def answer(handler, status, body):
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "text/xml;charset=UTF-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass
