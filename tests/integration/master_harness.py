"""What the master's end-to-end cases share: real ci-master and ci-worker processes on 127.0.0.1.

Each case (tests/integration/master_e2e_*.py) runs in its own temp dir with its own bare
repository, config and master, and is its own meson test, so one failing case hides no other.
A case is a function of a `Case`; `run(case_function)` is its main:

    def main(case):
        master = case.start_master(case.write_config(case.standard_config()))
        case.check(master.get("/healthz")["status"] == "ok", "/healthz answers ok")

    if __name__ == "__main__":
        harness.run(main)

Webhooks are signed with Python's own hmac (not libci's), the REST API is read with urllib, and
the git CLI is the oracle for merges. Every check can fail; waits poll with a deadline.
Workers speak TLS to the master: they pin the fingerprint of the certificate the master created
in its data dir, computed here with Python's ssl and hashlib (not libci's).
A failing case prints the last lines of every log; LIBCI_E2E_KEEP=1 keeps its temp dir.
"""

import base64
import calendar
import hashlib
import hmac
import json
import os
import shutil
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
import uuid

BUILD = os.environ["LIBCI_BUILD_DIR"]
MASTER = os.path.join(BUILD, "tools", "ci-master", "ci-master")
WORKER = os.path.join(BUILD, "tools", "ci-worker", "ci-worker")
ZERO = "0" * 40

# The masters' EC2 pools (the standard config has an EC2 class) never reach AWS from a test:
# cases that launch instances point aws.endpoint_url at their own moto_server.
os.environ["AWS_ENDPOINT_URL_EC2"] = "http://127.0.0.1:9"
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def certificate_fingerprint(pem_path):
    """`sha256:HEX` of the first certificate of a PEM file, as `ci-worker --fingerprint` takes
    it: Python's own PEM decoding and SHA-256."""
    der = ssl.PEM_cert_to_DER_cert(open(pem_path).read())
    return "sha256:" + hashlib.sha256(der).hexdigest()

# The step every case's builder runs: marks for the lock case, the revision it tested, a wait for
# `$RELEASE` when the tree has a file `slow`, and a failure when it has a file `broken`. It
# writes JUnit XML to reports/junit.xml (read by builders with TEST_RESULTS): app.Tests.test_ok
# passes, test_skip is skipped, test_broken fails when the tree has a file `broken`.
TEST_SCRIPT = ('echo "start $CI_BUILD_ID" >> "$MARKS"\n'
               'echo "testing $(git rev-parse HEAD) (merge $CI_MERGE_COMMIT)"\n'
               'if [ -e slow ]; then echo waiting; '
               'while [ ! -e "$RELEASE" ]; do sleep 0.1; done; fi\n'
               'sleep 0.3\n'
               'echo "end $CI_BUILD_ID" >> "$MARKS"\n'
               'mkdir -p reports; f=""; [ -e broken ] && f="<failure/>"\n'
               'printf \'<testsuite><testcase classname="app.Tests" name="test_ok"/>'
               '<testcase classname="app.Tests" name="test_broken">%s</testcase>'
               '<testcase classname="app.Tests" name="test_skip"><skipped/></testcase>'
               '</testsuite>\' "$f" > reports/junit.xml\n'
               'if [ -e broken ]; then echo "the tests fail: broken is here"; exit 3; fi\n'
               'echo all tests passed\n')

# The step key (YAML, indented as test_builders' steps) that reads TEST_SCRIPT's JUnit XML.
TEST_RESULTS = '        test_results: "reports/*.xml"\n'


def git(*args, cwd=None, env=None):
    """Runs the git CLI with a fixed identity and no user or system config; returns stdout,
    raises AssertionError with git's message when it fails."""
    full = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
                GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.org",
                GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.org")
    full.update(env or {})
    done = subprocess.run(["git", *args], cwd=cwd, env=full, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def sanitized(pid):
    """Whether process `pid` runs under ASan or TSan (memory figures then mean little)."""
    with open(f"/proc/{pid}/maps") as maps:
        text = maps.read()
    return "libasan" in text or "libtsan" in text


def wait_for(what, predicate, timeout=60.0, interval=0.1):
    """Polls `predicate` until it returns something true, and returns that; raises
    AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def api_time(text):
    """Seconds since the epoch of an API time (`YYYY-MM-DDTHH:MM:SSZ`, UTC)."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


EXPORTER_LABEL = b"EXPORTER-libci-worker-proof"


class WorkerSocket:
    """A TLS connection to a master's worker port made with pyOpenSSL (Debian's python3-openssl;
    run such cases with /usr/bin/python3), for workers written in Python: it pins the master's
    certificate by `fingerprint` and exposes the exporter value proofs are bound to (RFC 5705),
    which Python's ssl module cannot give. recv/sendall/close like a socket; recv returns b""
    once the master closed the connection, and raises socket.timeout after `timeout` s."""

    def __init__(self, port, fingerprint, timeout=30):
        from OpenSSL import SSL, crypto  # noqa: E402 - only the cases that need it import it

        self.timeout = timeout
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.raw.settimeout(None)  # pyOpenSSL wants a blocking socket; recv waits by select
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
        context.set_verify(SSL.VERIFY_NONE, lambda *args: True)  # pinned below instead
        self.conn = SSL.Connection(context, self.raw)
        self.conn.set_connect_state()
        self.conn.do_handshake()
        der = crypto.dump_certificate(crypto.FILETYPE_ASN1, self.conn.get_peer_certificate())
        seen = "sha256:" + hashlib.sha256(der).hexdigest()
        if seen != fingerprint:
            raise AssertionError(f"the worker port's certificate is {seen}, not {fingerprint}")
        self.exporter = self.conn.export_keying_material(EXPORTER_LABEL, 32).hex()
        self.errors = (SSL.ZeroReturnError, SSL.SysCallError, SSL.Error)

    def recv(self, size):
        if self.conn.pending() == 0:
            ready, _, _ = select.select([self.raw], [], [], self.timeout)
            if not ready:
                raise socket.timeout("no answer from the master")
        try:
            return self.conn.recv(size)
        except self.errors:
            return b""

    def sendall(self, data):
        self.conn.sendall(data)

    def close(self):
        self.raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def proof(secret, nonce, connection):
    """hex HMAC-SHA256(hex SHA-256(secret), nonce ":" exporter): the proof a hello sends on
    `connection` (a WorkerSocket), with Python's own hashlib and hmac."""
    challenge = f"{nonce}:{connection.exporter}"
    key = hashlib.sha256(secret.encode()).hexdigest()
    return hmac.new(key.encode(), challenge.encode(), hashlib.sha256).hexdigest()


class Repo:
    """A bare origin with a `master` branch holding TEST_SCRIPT, and a clone to commit in."""

    def __init__(self, tmp):
        self.origin = os.path.join(tmp, "origin.git")
        self.work = os.path.join(tmp, "src")
        git("init", "-q", "--bare", "-b", "master", self.origin)
        git("clone", "-q", self.origin, self.work)
        self.write("test.sh", TEST_SCRIPT)
        git("add", "test.sh", cwd=self.work)
        git("commit", "-qm", "tests", cwd=self.work)
        git("push", "-q", "origin", "HEAD:master", cwd=self.work)

    def write(self, path, text):
        with open(os.path.join(self.work, path), "w") as out:
            out.write(text)

    def branch(self, name, files, base="master"):
        """Commits `files` (each holding the branch name) on `name`, forked from origin's
        `base`, force-pushes it and returns its tip."""
        git("checkout", "-q", "-B", name, f"origin/{base}", cwd=self.work)
        for path in files:
            self.write(path, name + "\n")
            git("add", path, cwd=self.work)
        git("commit", "-qm", f"work on {name}", cwd=self.work)
        git("push", "-q", "-f", "origin", f"HEAD:{name}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def advance_master(self):
        """Moves master on by one commit (so builds of branches forked before are merges) and
        returns its new tip."""
        git("checkout", "-q", "-B", "master", "origin/master", cwd=self.work)
        self.write("master.txt", "newer master\n")
        git("add", "master.txt", cwd=self.work)
        git("commit", "-qm", "master moves", cwd=self.work)
        git("push", "-q", "origin", "HEAD:master", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)

    def push_payload(self, branch, before, after, message="work"):
        """A GitHub push webhook body for `branch` moving from `before` to `after`."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        commit = {"id": after, "message": message, "timestamp": now,
                  "author": {"name": "Dev", "email": "dev@example.org"},
                  "added": [], "modified": ["test.sh"], "removed": []}
        url = self.origin
        return json.dumps({
            "ref": f"refs/heads/{branch}", "before": before, "after": after, "created": False,
            "deleted": False, "forced": False, "commits": [commit], "head_commit": commit,
            "repository": {"name": "demo", "full_name": "libci/demo", "clone_url": url,
                           "html_url": url, "url": url},
            "pusher": {"name": "dev"}}).encode()


class Master:
    """One ci-master process on port 0 (its ports read from --ports-file), and its REST API.
    Its logs are master-1.log, master-2.log... (one per start) in the case's temp dir, its data
    dir master-data (another `name` than "master" for a second master of a case)."""

    def __init__(self, case, config, env=None, args=(), name="master"):
        """`args`: more arguments of `ci-master start`."""
        self.case, self.config, self.env, self.args = case, config, env, list(args)
        self.name = name
        self.process = None
        self.web = self.worker_port = None
        self.starts = 0

    def start(self):
        """Starts the master (again) and waits for its ports; raises if it exits instead."""
        tmp = self.case.tmp
        ports = os.path.join(tmp, f"{self.name}-ports.json")
        if os.path.exists(ports):
            os.remove(ports)
        self.starts += 1
        log = open(os.path.join(tmp, f"{self.name}-{self.starts}.log"), "w")
        self.process = subprocess.Popen(
            [MASTER, "start", "--config", self.config, "--listen", "127.0.0.1",
             "--data-dir", self.data_dir(), "--ports-file", ports,
             "--heartbeat", "2", "--shutdown-grace", "30", *self.args],
            cwd=tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()
        wait_for("the master's ports file", lambda: os.path.exists(ports) or
                 self.process.poll() is not None, 30)
        if self.process.poll() is not None:
            raise AssertionError(f"ci-master exited with {self.process.returncode}")
        data = json.load(open(ports))
        self.web, self.worker_port = data["web_port"], data["worker_port"]
        return self

    def data_dir(self):
        return os.path.join(self.case.tmp, f"{self.name}-data")

    def fingerprint(self):
        """The fingerprint of the self-signed certificate the master created for its worker
        port (its data dir's tls/cert.pem)."""
        return certificate_fingerprint(os.path.join(self.data_dir(), "tls", "cert.pem"))

    def url(self, path):
        return f"http://127.0.0.1:{self.web}{path}"

    def get(self, path):
        """GET: parsed JSON, or the text of a text answer."""
        with urllib.request.urlopen(self.url(path), timeout=30) as response:
            body = response.read().decode()
            return json.loads(body) if "json" in response.headers["Content-Type"] else body

    def get_status(self, path):
        """GET: (status, parsed JSON), for answers that may be errors."""
        try:
            with urllib.request.urlopen(self.url(path), timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def post(self, path, body=b"", headers=None, auth=None):
        """POST: (status, parsed JSON); `auth` is (user, password) for basic authentication."""
        headers = dict(headers or {})
        if body and not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"  # the API takes JSON as JSON only
        request = urllib.request.Request(self.url(path), data=body, method="POST",
                                         headers=headers)
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def webhook(self, body, event="push", secret=None, delivery=None):
        """Sends a GitHub webhook signed with `secret` (default: the case's); (status, JSON)."""
        secret = self.case.webhook_secret if secret is None else secret
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return self.post("/change_hook/github", body, {
            "Content-Type": "application/json", "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature})

    def push(self, branch, before, after, message="work"):
        """Sends a signed push webhook and requires a 200 with one change; returns the answer."""
        status, answer = self.webhook(self.case.repo.push_payload(branch, before, after, message))
        if status != 200 or len(answer.get("changes", [])) != 1:
            raise AssertionError(f"push of {branch}: {status} {answer}")
        return answer

    def builds(self, query="limit=100"):
        """The builds, newest first (`query`: the query string of GET /api/v1/builds)."""
        return self.get("/api/v1/builds?" + query)["builds"]

    def requests(self, state="pending"):
        """The build requests in `state`."""
        return self.get(f"/api/v1/buildrequests?state={state}&limit=1000")["buildrequests"]

    def all_requests(self):
        """Every pending, claimed or completed request, by id. Read in that order: a request
        moves only forward (unless its build is lost), so one that existed before the call is
        listed, though one created meanwhile may not be."""
        found = {}
        for state in ("pending", "claimed", "completed"):
            for request in self.requests(state):
                found[request["id"]] = request
        return [found[i] for i in sorted(found)]

    def finished_build(self, tip):
        """The build of branch tip `tip` that ended (not running, not retry), or None."""
        for build in self.builds():
            if build["branch_tip"] == tip and build["result"] not in ("running", "retry"):
                return build
        return None

    def running_build(self, tip):
        for build in self.builds("running=1"):
            if build["branch_tip"] == tip:
                return build
        return None

    def step_log(self, build_id, step=1):
        return self.get(f"/api/v1/builds/{build_id}/steps/{step}/log")

    def wait_step_output(self, build_id, text, step=1, timeout=60):
        """Waits until the step's stored log holds `text`."""
        wait_for(f"'{text}' in the log of build {build_id}",
                 lambda: text in self.step_log(build_id, step), timeout)

    def connected(self, name):
        return any(w["name"] == name and w["connected"]
                   for w in self.get("/api/v1/workers")["workers"])

    def send_signal(self, sig):
        os.killpg(self.process.pid, sig)

    def kill(self, sig=signal.SIGKILL):
        """Sends `sig` to the master's process group and returns its exit status."""
        self.send_signal(sig)
        return self.process.wait(timeout=90)


class Worker:
    """One ci-worker process; a static worker of class `remote` by index, or a latent one
    (`name` and its one-time `token`, given through the environment as on EC2)."""

    def __init__(self, case, master, index, name=None, token=None, trust=None, port=None):
        """`trust`: the arguments that say how the worker checks the master (default: it pins
        the master's fingerprint); `port`: where it connects (default: the master's worker
        port; a proxy's, say)."""
        self.name = name or f"remote/{index}"
        tmp = case.tmp
        command = [WORKER, "start", "--master", f"127.0.0.1:{port or master.worker_port}",
                   "--name", self.name, "--work-dir", os.path.join(tmp, f"worker{index}")]
        command += trust if trust is not None else ["--fingerprint", master.fingerprint()]
        env = dict(os.environ)
        if token:
            env["CI_WORKER_SECRET"] = token
        else:
            secret_file = os.path.join(tmp, f"worker{index}.secret")
            with open(secret_file, "w") as out:
                out.write(case.passwords[index] + "\n")
            command += ["--secret-file", secret_file]
        self.log_path = os.path.join(tmp, f"worker{index}.log")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(command, cwd=tmp, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def log(self):
        return open(self.log_path).read()

    def send_signal(self, sig):
        os.killpg(self.process.pid, sig)

    def kill(self, sig=signal.SIGKILL):
        """Sends `sig` to the worker's process group (if still there) and waits for it."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        return self.process.wait(timeout=60)


class Case:
    """One end-to-end case: a temp dir, a repository, fresh secrets, and the processes it
    started (killed when it ends). `check` records a failure and goes on; an exception ends
    the case as a failure."""

    def __init__(self, name):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"libci-{name}-")
        self.repo = Repo(self.tmp)
        self.release = os.path.join(self.tmp, "release")  # slow steps wait for this file
        self.marks = os.path.join(self.tmp, "lock-marks")  # steps write start/end marks here
        self.webhook_secret = "webhook-" + uuid.uuid4().hex
        self.passwords = [uuid.uuid4().hex, uuid.uuid4().hex]
        self.auth = ("admin", uuid.uuid4().hex)
        self.secrets = [self.webhook_secret, *self.passwords, self.auth[1]]
        self.failures = []
        self.xfails = []
        self.masters = []
        self.workers = []

    def check(self, condition, message):
        """Prints `ok: message` or `FAIL: message` (and records the failure); returns
        `condition`."""
        print(("ok: " if condition else "FAIL: ") + message, flush=True)
        if not condition:
            self.failures.append(message)
        return condition

    def xfail(self, reason):
        """Records a known bug of libci that makes this case fail: printed loudly, and the
        case exits 1 (meson's should_fail turns that into EXPECTEDFAIL)."""
        print(f"XFAIL: {reason}", flush=True)
        self.xfails.append(reason)

    def standard_config(self, tree_stable_timer="1s", workers="remote", locks="[one]",
                        extra_schedulers=""):
        """The config most cases use: static workers `remote/0` and `remote/1` (max_builds 2),
        a latent class, one local worker, a lock of 1, builder `tests` running
        TEST_SCRIPT on `workers` under `locks`, a branch scheduler for `feature/*` with
        `tree_stable_timer`, a force scheduler, and `extra_schedulers` (YAML lines)."""
        return self.remote_config("  latent: {ami: ci-image, slaves: 2}\n"
                                  "  local: {local: true}\n") + f"""locks:
  one: {{max_count: 1}}
builders:
  tests:
    repository: demo
    workers: [{workers}]
    locks: {locks}
    steps:
      - name: test
        run: "sh ./test.sh"
        env: {{RELEASE: "{self.release}", MARKS: "{self.marks}"}}
schedulers:
  branches: {{type: branch, repository: demo, builders: [tests], branches: ["feature/*"],
             tree_stable_timer: {tree_stable_timer}}}
  force: {{type: force, builders: [tests]}}
{extra_schedulers}"""

    def remote_config(self, extra_slaves=""):
        """The start of a config: the master on port 0 with the case's state file, auth and
        webhook secret, static workers `remote/0` and `remote/1` (max_builds 2) and
        `extra_slaves` (YAML lines), and repository `demo`; add `builders` and `schedulers`."""
        return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {self.tmp}/state.sqlite}}
auth: {{user: {self.auth[0]}, password: "{self.auth[1]}"}}
github: {{webhook_secret: "{self.webhook_secret}"}}
slaves:
  remote: {{passwords: ["{self.passwords[0]}", "{self.passwords[1]}"], max_builds: 2}}
{extra_slaves}repositories:
  demo: {{url: "{self.repo.origin}"}}
"""

    def serial_lock_builds(self, master, count=3):
        """Pushes `count` branches at once, waits for their builds and checks that they all
        succeeded and never ran at once (the marks TEST_SCRIPT writes); returns the builds."""
        open(self.marks, "w").close()
        tips = [self.repo.branch(f"feature/lock-{i}", [f"lock{i}.txt"]) for i in range(count)]
        for i, tip in enumerate(tips):
            master.push(f"feature/lock-{i}", ZERO, tip, "lock")
        builds = [wait_for("the lock builds", lambda tip=tip: master.finished_build(tip))
                  for tip in tips]
        self.check(all(b["result"] == "success" for b in builds),
                   f"the {count} builds succeeded ({[b['result'] for b in builds]})")
        lines = open(self.marks).read().split()
        events = lines[0::2]
        overlapping = any(events[i] == "start" and events[i + 1] == "start"
                          for i in range(len(events) - 1))
        self.check(len(events) == 2 * count and not overlapping,
                   f"the lock never let two builds run at once: {' '.join(lines)}")
        return builds

    def start_fake_github(self):
        """A local GitHub commit-status API (tests/support/fake_github.py) for this case's
        repository (`libci/demo`) that knows its commits; the token joins the case's secrets."""
        sys.path.insert(0, os.path.join(os.environ["LIBCI_SOURCE_DIR"], "tests", "support"))
        import fake_github  # noqa: E402 - found through LIBCI_SOURCE_DIR

        self.github_token = "ghp_" + uuid.uuid4().hex
        self.secrets.append(self.github_token)

        def known(sha):
            return subprocess.run(["git", "cat-file", "-e", sha + "^{commit}"],
                                  cwd=self.repo.origin, capture_output=True).returncode == 0

        self.github = fake_github.FakeGithub(self.github_token, "libci/demo", known).start()
        return self.github

    def test_builders(self, names, test_results=()):
        """The `builders` entries (YAML, indented by two) of builders `names` of repository
        `demo`, each running TEST_SCRIPT on the local workers; those in `test_results` read its
        JUnit XML (TEST_RESULTS)."""
        return "".join(f"""  {name}:
    repository: demo
    workers: [local]
    steps:
      - name: test
        run: "sh ./test.sh"
        env: {{RELEASE: "{self.release}", MARKS: "{self.marks}"}}
""" + (TEST_RESULTS if name in test_results else "") for name in names)

    def github_head(self, github_extra=""):
        """The start of a config that reports commit statuses to the fake GitHub: buildmaster
        (with a url for the builds' links), auth and the github section, ending with
        `github_extra` (more keys of github, YAML lines indented by two)."""
        return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {self.tmp}/state.sqlite,
              url: "http://ci.example.org:8010/"}}
auth: {{user: {self.auth[0]}, password: "{self.auth[1]}"}}
github:
  webhook_secret: "{self.webhook_secret}"
  token: "{self.github_token}"
  report_status: true
  api_url: "{self.github.url}"
{github_extra}"""

    def github_config(self):
        """A config that reports commit statuses to the fake GitHub: local workers (two at
        once), builders `tests` (reported; reads TEST_SCRIPT's JUnit XML), `flaky` (in
        failing_builders) and `quiet` (outside the `github.builders` filter), all run by the
        branch scheduler for `feature/*`; a force scheduler for all three."""
        return self.github_head("  builders: [tests, flaky]\n") + f"""slaves:
  local: {{local: true, slaves: 3}}
repositories:
  demo: {{url: "{self.repo.origin}", github: libci/demo}}
failing_builders: [flaky]
builders:
""" + self.test_builders(("tests", "flaky", "quiet"), ("tests",)) + f"""schedulers:
  branches: {{type: branch, repository: demo, builders: [tests, flaky, quiet],
             branches: ["feature/*"], tree_stable_timer: 1s}}
  force: {{type: force, builders: [tests, flaky, quiet]}}
"""

    def start_fake_zulip(self):
        """A local Zulip (tests/support/fake_zulip.py) with streams builds, critical and ops; the
        bot's API key joins the case's secrets."""
        sys.path.insert(0, os.path.join(os.environ["LIBCI_SOURCE_DIR"], "tests", "support"))
        import fake_zulip  # noqa: E402 - found through LIBCI_SOURCE_DIR

        self.zulip_key = "zk" + uuid.uuid4().hex
        self.secrets.append(self.zulip_key)
        self.zulip = fake_zulip.FakeZulip("ci-bot@example.org", self.zulip_key,
                                          {"builds", "critical", "ops"}).start()
        return self.zulip

    def zulip_config(self):
        """A config that reports to the fake Zulip: local workers (three at once), builders
        `tests` (TEST_SCRIPT, its JUnit XML read), `lint` (passes) and `pytest` (prints pytest's
        summary of a failed test when the tree has a file `broken`), run by a branch scheduler
        for `master` and `feature/*`."""
        steps = {
            "tests": "sh ./test.sh",
            "lint": "echo lint ok",
            "pytest": ("echo collected 2 items; if [ -e broken ]; then "
                       "echo 'FAILED tests/test_app.py::test_broken - assert 0'; "
                       "echo '1 failed, 1 passed in 0.02s'; exit 1; fi; echo 2 passed"),
        }
        return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {self.tmp}/state.sqlite,
              url: "http://ci.example.org:8010/"}}
auth: {{user: {self.auth[0]}, password: "{self.auth[1]}"}}
github: {{webhook_secret: "{self.webhook_secret}"}}
zulip:
  user: ci-bot@example.org
  password: "{self.zulip_key}"
  site: "{self.zulip.url}"
  stream: builds
  critical_stream: critical
  ops_stream: ops
slaves:
  local: {{local: true, slaves: 3}}
repositories:
  demo: {{url: "{self.repo.origin}"}}
builders:
""" + "".join(f"""  {name}:
    repository: demo
    workers: [local]
    steps:
      - name: test
        run: "{run}"
        env: {{RELEASE: "{self.release}", MARKS: "{self.marks}"}}
""" + (TEST_RESULTS if name == "tests" else "") for name, run in steps.items()) + """schedulers:
  branches: {type: branch, repository: demo, builders: [tests, lint, pytest],
             branches: ["master", "feature/*"], tree_stable_timer: 1s}
"""

    def reporters_config(self, builders, github_extra="", zulip_extra=""):
        """A config that reports to both fakes (start_fake_github and start_fake_zulip first):
        GitHub statuses for every builder and Zulip summaries to stream `builds`, for
        `builders` (each running TEST_SCRIPT) on as many local workers, run by a branch
        scheduler for `feature/*`; `github_extra` and `zulip_extra` are more keys of those
        sections (YAML lines indented by two)."""
        return self.github_head(github_extra) + f"""zulip:
  user: ci-bot@example.org
  password: "{self.zulip_key}"
  site: "{self.zulip.url}"
  stream: builds
{zulip_extra}slaves:
  local: {{local: true, slaves: {len(builders)}}}
repositories:
  demo: {{url: "{self.repo.origin}", github: libci/demo}}
builders:
{self.test_builders(builders)}schedulers:
  branches: {{type: branch, repository: demo, builders: [{", ".join(builders)}],
             branches: ["feature/*"], tree_stable_timer: 1s}}
"""

    def write_config(self, text, name="config.yml"):
        """Writes `text` as the case's config.yml (or `name`; 0600: it holds secrets); returns
        its path."""
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        return path

    def start_master(self, config, env=None, args=(), name="master"):
        """Starts a ci-master with `config` (a path), `env` (default: this environment) and
        more arguments `args`; `name` tells a case's masters apart (logs, data dirs)."""
        master = Master(self, config, env, args, name)
        self.masters.append(master)
        return master.start()

    def start_worker(self, master, index, name=None, token=None, trust=None, port=None):
        worker = Worker(self, master, index, name, token, trust, port)
        self.workers.append(worker)
        return worker

    def start_workers(self, master, count=2):
        """Starts static workers remote/0.. and waits until the master lists them connected."""
        started = [self.start_worker(master, i) for i in range(count)]
        wait_for(f"{count} connected workers", lambda: all(
            master.connected(w.name) for w in started), 30)
        return started

    def slow_build(self, master, branch="feature/slow"):
        """Pushes `branch` with a file `slow`, waits until its build runs and its step waits
        for `self.release`; returns (the branch tip, the running build)."""
        tip = self.repo.branch(branch, ["slow"])
        master.push(branch, ZERO, tip, "slow")
        build = wait_for(f"the build of {branch} to run", lambda: master.running_build(tip))
        master.wait_step_output(build["id"], "waiting")
        return tip, build

    def logs(self):
        """Every log file of the case's processes, by name."""
        return {name: open(os.path.join(self.tmp, name), errors="replace").read()
                for name in sorted(os.listdir(self.tmp)) if name.endswith(".log")}

    def check_no_secrets_in_logs(self):
        logs = "".join(self.logs().values())
        leaked = [i for i, secret in enumerate(self.secrets) if secret in logs]
        self.check(not leaked, "no log shows a token, a password or the webhook secret"
                   + (f" (secrets #{leaked} leaked)" if leaked else ""))

    def close(self):
        for worker in self.workers:
            worker.kill()
        for master in self.masters:
            if master.process and master.process.poll() is None:
                master.kill(signal.SIGKILL)
        if self.failures or self.xfails:
            for name, text in self.logs().items():
                print(f"--- {name} (last lines)")
                print("".join(text.splitlines(keepends=True)[-30:]))
        if os.environ.get("LIBCI_E2E_KEEP"):
            print(f"kept {self.tmp} (LIBCI_E2E_KEEP)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run(case_function):
    """The main of a case: runs `case_function(case)` in a fresh Case, then checks that no log
    holds a secret, and exits 0 when every check passed (1 otherwise, or after an XFAIL)."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    case = Case(name)
    try:
        case_function(case)
    except Exception as error:  # noqa: BLE001 - report, then fail
        traceback.print_exc()
        case.failures.append(repr(error))
        print("FAIL:", repr(error), flush=True)
    finally:
        case.check_no_secrets_in_logs()
        case.close()
    print(f"{name}: {len(case.failures)} failure(s)"
          + (f", XFAIL: {'; '.join(case.xfails)}" if case.xfails else ""))
    sys.exit(1 if case.failures or case.xfails else 0)
