#!/usr/bin/env python3
"""The EC2 pool never leaks through a faulty EC2: a proxy in front of moto_server answers a
random share of the calls itself with HTTP 500 or RequestLimitExceeded, or forwards the call
and then drops the answer (the instance exists, the master never hears of it). Each run forces
requests for the EC2 class with no worker to boot, cancels them, stops the master (SIGTERM) and
starts it again with the faults off: once it has reconciled, no tagged instance is left
pending or running. Every fault the proxy injected is listed in the log. Runs: 3 (seeds 1..3),
or LIBCI_EC2_FAULT_RUNS. SKIPs (exit 77) loudly when moto_server is missing."""

import http.server
import os
import random
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

import master_harness as harness
from master_e2e_ec2 import HOST, Moto, REGION, make_image, moto_program


class FaultProxy:
    """Forwards POSTs to moto, faulting a share of them as `rng` decides."""

    def __init__(self, upstream, rng, rate):
        self.upstream, self.rng, self.rate = upstream, rng, rate
        self.faults = []
        self.enabled = True
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                action = next((p.split("=", 1)[1] for p in body.decode().split("&")
                               if p.startswith("Action=")), "?")
                fault = None
                if proxy.enabled and proxy.rng.random() < proxy.rate:
                    fault = proxy.rng.choice(["500", "throttle", "lost"])
                    proxy.faults.append(f"{action}: {fault}")
                    print(f"proxy: {action}: injected {fault}", flush=True)
                if fault == "500":
                    self.answer(500, b"<Response><Errors><Error><Code>InternalError</Code>"
                                b"<Message>injected</Message></Error></Errors></Response>")
                    return
                if fault == "throttle":
                    self.answer(400, b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
                                b"<Message>injected</Message></Error></Errors></Response>")
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length", "connection")}
                request = urllib.request.Request(proxy.upstream + self.path, data=body,
                                                 headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, answer = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, answer = error.code, error.read()
                if fault == "lost":
                    self.close_connection = True
                    self.connection.shutdown(2)  # done upstream; the answer never arrives
                    return
                self.answer(status, answer)

            def answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


def config(case, endpoint, state):
    return f"""
buildmaster: {{host: {HOST}, web_port: 0, worker_port: 0, state: {state}}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
aws: {{identifier: {case.moto.key_id}, secret_identifier: "{case.moto.secret}",
       region: {REGION}, endpoint_url: "{endpoint}"}}
slaves:
  aws: {{ami: ci-base, slaves: 3, instance_type: t2.micro, missing_timeout: 4,
         build_wait_timeout: 3}}
builders:
  on-ec2: {{workers: [aws], steps: [{{name: t, run: "true"}}]}}
schedulers:
  force: {{type: force, builders: [on-ec2]}}
"""


def one_run(case, seed):
    rng = random.Random(seed)
    proxy = FaultProxy(case.moto.endpoint, rng, rate=0.35)
    state = os.path.join(case.tmp, f"state-{seed}.sqlite")
    path = case.write_config(config(case, proxy.url, state))
    args = ["--ec2-reconcile", "2"]
    master = case.start_master(path, args=args)
    requests = []
    for _ in range(rng.randint(2, 4)):
        status, answer = master.post("/api/v1/builders/on-ec2/force", b"{}", auth=case.auth)
        if status == 202:
            requests += answer["requests"]
    time.sleep(rng.uniform(3, 8))
    for request in requests:
        master.post(f"/api/v1/buildrequests/{request}/cancel", auth=case.auth)
    time.sleep(rng.uniform(0, 3))
    # A stop under faults may fail to terminate: the next start, with a sound EC2, must.
    master.kill(signal.SIGTERM if rng.random() < 0.5 else signal.SIGKILL)
    proxy.enabled = False
    master.start()

    def settled():
        return not case.moto.tagged(("pending", "running"))
    try:
        harness.wait_for("no tagged instance left running", settled, 40)
        leaked = []
    except AssertionError:
        leaked = sorted(case.moto.tagged(("pending", "running")))
    master.kill(signal.SIGTERM)
    proxy.close()
    case.check(not leaked, f"run {seed}: {len(proxy.faults)} injected fault(s) "
               f"({'; '.join(proxy.faults) or 'none'}), leaked: {leaked or 'nothing'}")
    # The next run starts clean, whatever this one left.
    for instance_id in leaked:
        case.moto.ec2.terminate_instances(InstanceIds=[instance_id])
    return len(proxy.faults)


def main(case):
    if not moto_program():
        print("SKIP: moto_server not found (LIBCI_MOTO_SERVER unset, not in PATH; "
              "scripts/test.sh tries pip install 'moto[server]'): the EC2 faults are not tested",
              flush=True)
        sys.exit(77)
    case.moto = Moto(case)
    try:
        make_image(case.moto, "ci-base-1", {"base_name": "ci-base", "production": "true",
                                            "timestamp": "1"})
        runs = int(os.environ.get("LIBCI_EC2_FAULT_RUNS", "3"))
        faults = sum(one_run(case, seed) for seed in range(1, runs + 1))
        case.check(faults > 0, f"the proxy injected {faults} fault(s) over {runs} run(s)")
    finally:
        case.moto.stop()


if __name__ == "__main__":
    harness.run(main)
