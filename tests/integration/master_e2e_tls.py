#!/usr/bin/env python3
"""TLS on the worker port (issue 17), with real ci-master and ci-worker processes on 127.0.0.1
and peers written here with Python's ssl and pyOpenSSL (not libci's TLS code):

- the master creates a self-signed certificate in its data dir (key 0600); `ci-master
  fingerprint` prints the fingerprint Python computes from that file;
- a worker pinning that fingerprint builds, through a relay that records every byte: the
  recording holds no build log text and no protocol message;
- a wrong fingerprint, a certificate for another host (or from no CA) with --ca, and a
  plaintext client (a Python socket, and ci-worker --insecure) are refused, with messages that
  say which;
- a TLS-terminating proxy with its own certificate: a pinning worker detects it; a worker that
  pins the proxy's certificate has its proof refused by the master (the proof is bound to the
  TLS connection it was made on, and the proxy's connection to the master is another one);
- with --ca and a certificate for 127.0.0.1 from that CA, a worker connects;
- a worker reconnecting after a master restart resumes its TLS session (both logs say so);
- limits: no hello within 10 s closes the connection; an over-long line closes it; wrong
  proofs from one address wait longer each time and are not logged once per try;
- `buildmaster.tls: false` with --insecure works, with a warning on both sides.
"""

import json
import os
import socket
import ssl
import subprocess
import threading
import time

import master_harness as harness

EXIT_REFUSED = 1  # ci-worker: the master refused it, or its certificate is not the expected one


def openssl(*args, cwd):
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)}: {done.stderr.strip()}")


def make_ca(tmp):
    """A CA (ca.pem, ca.key) made with the openssl CLI."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test CA",
            cwd=tmp)
    return os.path.join(tmp, "ca.pem")


def make_leaf(tmp, name, san):
    """A certificate `name`.pem (key `name`.key) for `san` ("DNS:x" or "IP:x") from the CA."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=tmp)
    with open(os.path.join(tmp, f"{name}.ext"), "w") as out:
        out.write(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
            cwd=tmp)
    return os.path.join(tmp, f"{name}.pem"), os.path.join(tmp, f"{name}.key")


def pump(source, sink, record=None):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            if record is not None:
                record.append(data)
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Proxy(threading.Thread):
    """A proxy on 127.0.0.1:0 to the master's worker port. `recording`: relays bytes as they
    are, keeping a copy. `terminating`: ends the worker's TLS with its own certificate and opens
    a TLS connection of its own to the master, relaying the plaintext between them."""

    def __init__(self, upstream_port, cert=None, key=None):
        super().__init__(daemon=True)
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.recorded = []
        self.server_context = None
        if cert:
            self.server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.server_context.load_cert_chain(cert, key)

    def run(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            upstream.settimeout(None)
            if self.server_context:
                client = self.server_context.wrap_socket(client, server_side=True)
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                upstream = context.wrap_socket(upstream)
        except (OSError, ssl.SSLError):
            client.close()
            return
        threading.Thread(target=pump, args=(client, upstream, self.recorded), daemon=True).start()
        pump(upstream, client, self.recorded)

    def capture(self):
        return b"".join(self.recorded)


def wait_exit(case, worker, what, expected_text):
    """Waits for a worker that must give up; checks its exit status and its message."""
    try:
        status = worker.process.wait(timeout=40)
    except subprocess.TimeoutExpired:
        status = None
    log = worker.log()
    case.check(status == EXIT_REFUSED and expected_text in log,
               f"{what}: the worker exits {EXIT_REFUSED} saying \"{expected_text}\" "
               f"(exit {status}; its log ends: {log.strip().splitlines()[-1:]})")


def plaintext_hello(port):
    """A plaintext client's first line on the worker port, and what comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b'{"type": "hello", "name": "remote/0", "proof": "00", "protocol": 3}\n')
        answer = b""
        while b"\n" not in answer:
            data = s.recv(4096)
            if not data:
                break
            answer += data
        return answer.decode(errors="replace")


def main(case):
    tmp = case.tmp
    config = case.write_config(case.standard_config())
    master = case.start_master(config)
    data = master.data_dir()

    # The certificate made on first start, and `ci-master fingerprint`.
    key_mode = os.stat(os.path.join(data, "tls", "key.pem")).st_mode & 0o777
    case.check(key_mode == 0o600, f"the self-signed key is mode 0600 ({oct(key_mode)})")
    pinned = master.fingerprint()
    printed = subprocess.run([harness.MASTER, "fingerprint", "--config", config, "--data-dir", data],
                             capture_output=True, text=True)
    case.check(printed.returncode == 0 and printed.stdout.strip() == pinned,
               f"`ci-master fingerprint` prints the certificate's SHA-256 ({printed.stdout.strip()}"
               f" {printed.stderr.strip()}; Python: {pinned})")
    case.check(pinned in open(os.path.join(tmp, "master-1.log")).read(),
               "the master logs the fingerprint at start")

    # A pinning worker builds, through a relay that records the bytes.
    relay = Proxy(master.worker_port)
    relay.start()
    worker = case.start_worker(master, 0, port=relay.port)
    harness.wait_for("remote/0 connected through the relay", lambda: master.connected("remote/0"))
    tip = case.repo.branch("feature/tls", ["tls.txt"])
    master.push("feature/tls", harness.ZERO, tip)
    build = harness.wait_for("the build over TLS", lambda: master.finished_build(tip), 90)
    case.check(build["result"] == "success", f"the build over TLS succeeds ({build['result']})")
    log = master.step_log(build["id"])
    case.check("all tests passed" in log, "its log reached the master")
    capture = relay.capture()
    case.check(len(capture) > 1000, f"the relay saw the connection ({len(capture)} bytes)")
    leaked = [text for text in (b"all tests passed", b"testing ", b"challenge", b"step_started",
                                tip.encode(), b"feature/tls") if text in capture]
    case.check(not leaked, f"the recorded bytes hold no log text, message or branch ({leaked})")
    case.check("TLSv1.3" in worker.log(), "the worker's status line says TLSv1.3")

    # A worker reconnecting after a master restart resumes its TLS session.
    master.kill()
    master.start()
    relay.upstream_port = master.worker_port  # the worker still dials the relay's port
    harness.wait_for("remote/0 back after the restart", lambda: master.connected("remote/0"), 60)
    harness.wait_for("the worker's reconnection line",
                     lambda: "session resumed" in worker.log(), 10)
    case.check("session resumed" in worker.log(),
               "the worker resumed its TLS session after the master's restart")
    master_log = open(os.path.join(tmp, "master-2.log")).read()
    case.check("remote/0 connected from" in master_log and "session resumed" in master_log,
               "the restarted master logs the resumed session")
    case.check(master.fingerprint() == pinned, "the restarted master kept its certificate")
    worker.kill()

    # A wrong fingerprint.
    wrong = "sha256:" + "ab" * 32
    wait_exit(case, case.start_worker(master, 1, trust=["--fingerprint", wrong]),
              "a wrong fingerprint", "not the pinned")

    # A TLS-terminating proxy with its own certificate.
    make_ca(tmp)
    proxy_cert, proxy_key = make_leaf(tmp, "proxy", "IP:127.0.0.1")
    terminating = Proxy(master.worker_port, proxy_cert, proxy_key)
    terminating.start()
    wait_exit(case, case.start_worker(master, 1, port=terminating.port),
              "a TLS-terminating proxy (the master's fingerprint pinned)", "not the pinned")
    # A worker that trusts the proxy: its proof, bound to its own connection, is refused.
    proxy_pin = harness.certificate_fingerprint(proxy_cert)
    wait_exit(case, case.start_worker(master, 1, port=terminating.port,
                                      trust=["--fingerprint", proxy_pin]),
              "a proof relayed by a TLS-terminating proxy", "wrong secret")

    # --ca: the master's self-signed certificate is for buildmaster.host (localhost), and the
    # worker connects to 127.0.0.1.
    ca = os.path.join(tmp, "ca.pem")
    wait_exit(case, case.start_worker(master, 1, trust=["--ca", ca]),
              "--ca with a certificate the CA did not issue", "does not verify with --ca")

    # Plaintext clients.
    answer = plaintext_hello(master.worker_port)
    case.check('"refused"' in answer and "requires TLS" in answer,
               f"a plaintext client is refused, told TLS is required ({answer.strip()})")
    wait_exit(case, case.start_worker(master, 1, trust=["--insecure"]),
              "ci-worker --insecure against a TLS master", "requires TLS")

    # Limits: the hello deadline.
    with harness.WorkerSocket(master.worker_port, pinned, timeout=20) as silent:
        started = time.monotonic()
        silent.recv(4096)  # the challenge
        closed = silent.recv(4096) == b""
        waited = time.monotonic() - started
    case.check(closed and 8 <= waited <= 15,
               f"a connection without a hello is closed after 10 s ({waited:.1f} s)")
    # An over-long line.
    with harness.WorkerSocket(master.worker_port, pinned, timeout=20) as long_line:
        long_line.recv(4096)
        try:
            long_line.sendall(b"x" * (4 * 1024 * 1024 + 4096))
        except Exception:  # noqa: BLE001 - the master may close while we send
            pass
        case.check(long_line.recv(4096) == b"", "a line over 4 MiB closes the connection")
    # Wrong proofs from one address: each waits longer.
    times = []
    for _ in range(5):
        with harness.WorkerSocket(master.worker_port, pinned, timeout=30) as guesser:
            challenge = guesser.recv(4096)
            started = time.monotonic()
            version = json.loads(challenge.split(b"\n")[0])["protocol"]
            guesser.sendall(b'{"type": "hello", "name": "remote/1", "proof": "' + b"0" * 64 +
                            b'", "max_builds": 1, "protocol": ' + str(version).encode() + b'}\n')
            answer = guesser.recv(4096)
            times.append(time.monotonic() - started)
            case.check(b"refused" in answer and b"challenge" in challenge,
                       f"a wrong proof is refused ({answer[:80]})")
    # 0.25 s doubling per wrong proof (one came before these five: the relayed proof).
    case.check(times[-1] >= 2.0 and times[-1] - times[0] >= 1.5,
               f"repeated wrong proofs wait longer each time ({[round(t, 2) for t in times]})")
    refusals = open(os.path.join(tmp, "master-2.log")).read().count('refused "remote/1"')
    case.check(1 <= refusals < 5, f"and are logged once per interval, not per try "
                                  f"({refusals} lines for 5 + earlier tries)")
    master.kill()

    # A certificate from the CA, but for another host, with --ca.
    cert, key = make_leaf(tmp, "other", "DNS:other.example.org")
    master.config = case.write_config(case.standard_config().replace(
        "buildmaster: {", f'buildmaster: {{tls: {{cert: "{cert}", key: "{key}"}}, '))
    master.start()
    wait_exit(case, case.start_worker(master, 1, trust=["--ca", ca]),
              "--ca and a certificate of the CA for another host", "IP address mismatch")
    master.kill()

    # A certificate from the CA for 127.0.0.1 (buildmaster.tls.cert and key), with --ca.
    cert, key = make_leaf(tmp, "master", "IP:127.0.0.1")
    text = case.standard_config().replace(
        "buildmaster: {", f'buildmaster: {{tls: {{cert: "{cert}", key: "{key}"}}, ')
    master.config = case.write_config(text)
    master.start()
    worker = case.start_worker(master, 1, trust=["--ca", ca])
    harness.wait_for("remote/1 connected with --ca", lambda: master.connected("remote/1"), 30)
    case.check(True, "a worker with --ca connects to a master whose certificate the CA issued")
    worker.kill()
    wait_exit(case, case.start_worker(master, 0, trust=["--fingerprint", pinned]),
              "the old pin after the certificate changed", "not the pinned")
    master.kill()

    # buildmaster.tls: false, and --insecure.
    master.config = case.write_config(
        case.standard_config().replace("buildmaster: {", "buildmaster: {tls: false, "))
    master.start()
    worker = case.start_worker(master, 0, trust=["--insecure"])
    harness.wait_for("remote/0 connected without TLS", lambda: master.connected("remote/0"), 30)
    master_log = open(os.path.join(tmp, f"master-{master.starts}.log")).read()
    case.check("without TLS" in master_log and "not encrypted" in master_log,
               "the master warns of the plaintext connection")
    case.check("not encrypted (--insecure)" in worker.log(), "the worker warns of it too")
    wait_exit(case, case.start_worker(master, 1, trust=["--fingerprint", pinned]),
              "a TLS worker against a plaintext master", "needs --insecure")


if __name__ == "__main__":
    harness.run(main)
