#!/usr/bin/env python3
"""Upload steps (issue 16) through a real ci-master and real ci-worker processes:
- a builder uploads a directory of 1,000 files, one of them 200 MB (sparse), with a symbolic
  link in the tree (skipped, said so): every file arrives with its SHA-256, the link does not;
  after_upload runs in the uploaded directory and its output is in the step's log;
  CI_MASTER_URL and CI_RESULTS_URL are in the steps' environment;
- a reconnect mid-upload (a relay cuts the worker's TCP connection after 60 MB): the build is
  retried and its upload resumes: the master says it kept bytes from the first attempt and
  received only the rest, and the file arrives intact;
- a failing after_upload fails its step; an upload over buildmaster.max_upload_size is refused
  before any byte is sent; `from` through a symbolic link (to /) fails;
- check-config refuses hostile names (`..`, absolute, control characters) in `to` and `from`.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import urllib.parse

import master_harness as harness

BIG = 200 * 1000 * 1000  # bytes of the big file
CUT_AFTER = 60 * 1000 * 1000  # the relay cuts the first connection after this many bytes

MAKE_TREE = f"""set -e
rm -rf out && mkdir -p out/sub/deeper
i=0
while [ $i -lt 999 ]; do
  d=out; [ $((i % 3)) -eq 0 ] && d=out/sub; [ $((i % 7)) -eq 0 ] && d=out/sub/deeper
  echo "file $i of build $CI_BUILD_ID" > $d/f$i.txt
  i=$((i + 1))
done
truncate -s {BIG} out/big.bin
printf 'tail' >> out/big.bin
chmod 755 out/sub/f3.txt
ln -s /etc/passwd out/link
echo "made $(find out -type f | wc -l) files"
"""

BIG_SIZE = BIG + 4


class Relay:
    """A TCP relay to the master's worker port: the first connection is cut once CUT_AFTER
    bytes went from the worker to the master; later ones are relayed whole."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.cut = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            limit = CUT_AFTER if self.connections == 1 else None
            threading.Thread(target=self.pump, args=(client, upstream, limit),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, None),
                             daemon=True).start()

    def pump(self, source, sink, limit):
        total = 0
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                sink.sendall(data)
                total += len(data)
                if limit is not None and total >= limit:
                    self.cut.set()
                    break
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def config(case, cap="250MiB"):
    return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite,
              max_upload_size: {cap}}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  direct: {{passwords: ["{case.passwords[0]}"], max_builds: 3}}
  relayed: {{passwords: ["{case.passwords[1]}"]}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  package/deb:
    repository: demo
    workers: [direct]
    steps:
      - {{name: make, run: {json.dumps(MAKE_TREE)}}}
      - name: upload-repo
        upload: {{from: out, to: repo/deb}}
        after_upload: "echo after_upload in $(pwd); find . -type f | wc -l > ../count.txt; sha256sum big.bin"
      - {{name: where, run: "echo master=[$CI_MASTER_URL] results=[$CI_RESULTS_URL]"}}
  resumed:
    repository: demo
    workers: [relayed]
    steps:
      - {{name: make, run: "truncate -s {BIG} big.bin && printf 'end' >> big.bin"}}
      - {{name: upload, upload: {{from: big.bin, to: big}}}}
  failing-after:
    repository: demo
    workers: [direct]
    steps:
      - {{name: make, run: "mkdir -p small && echo hi > small/a"}}
      - {{name: upload, upload: {{from: small, to: small}}, after_upload: ["sh", "-c", "echo failing now; exit 3"]}}
      - {{name: never, run: "echo must not run"}}
  too-big:
    repository: demo
    workers: [direct]
    steps:
      - {{name: make, run: "mkdir -p huge && truncate -s 300M huge/a && truncate -s 10 huge/b"}}
      - {{name: upload, upload: {{from: huge, to: huge}}}}
  link-from:
    repository: demo
    workers: [direct]
    steps:
      - {{name: make, run: "ln -sfn / link"}}
      - {{name: upload, upload: {{from: link/etc, to: etc}}}}
schedulers:
  force: {{type: force, builders: [package/deb, resumed, failing-after, too-big, link-from]}}
"""


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_config_refusals(case):
    """check-config names the key and the rule for hostile `to` and `from` values."""
    bad = {
        '"../escape"': '".." segment',
        '"/etc/x"': "is absolute",
        '"a//b"': "empty segment",
        '"a\\u0001b"': "control character",
        '""': "",
    }
    for to, expected in bad.items():
        text = config(case).replace("to: repo/deb", f"to: {to}")
        path = os.path.join(case.tmp, "bad.yml")
        with open(path, "w") as out:
            out.write(text)
        result = subprocess.run([harness.MASTER, "check-config", path],
                                capture_output=True, text=True)
        output = result.stdout + result.stderr
        case.check(result.returncode != 0 and "builders.package/deb.steps[1].upload.to" in output
                   and expected in output,
                   f"check-config refuses to: {to} naming the key ({result.returncode}: "
                   f"{output.strip()[:300]!r})")
    text = config(case).replace("from: out,", "from: ../out,")
    with open(os.path.join(case.tmp, "bad.yml"), "w") as out:
        out.write(text)
    result = subprocess.run([harness.MASTER, "check-config",
                             os.path.join(case.tmp, "bad.yml")], capture_output=True, text=True)
    case.check(result.returncode != 0 and "upload.from" in result.stdout + result.stderr,
               "check-config refuses from: ../out")
    text = config(case).replace("from: big.bin, to: big", "from: big.bin, to: s3://docs-bucket/html")
    with open(os.path.join(case.tmp, "s3.yml"), "w") as out:
        out.write(text)
    result = subprocess.run([harness.MASTER, "check-config",
                             os.path.join(case.tmp, "s3.yml")], capture_output=True, text=True)
    output = result.stdout + result.stderr
    case.check(result.returncode == 0 and "not used yet" not in output,
               f"to: s3://... is accepted without a warning ({output.strip()[:300]!r})")


def main(case):
    check_config_refusals(case)
    master = case.start_master(case.write_config(config(case)))
    # Before the first upload the tree is empty, not missing: a listing without entries.
    listing = master.get("/results/")
    case.check("Index of /results/" in listing and "<a href=" not in listing,
               f"GET /results/ before any upload lists nothing ({listing[:200]!r})")
    relay = Relay(master.worker_port)
    direct = case.start_worker(master, 0, name="direct/0")
    relayed = case.start_worker(master, 1, name="relayed/0", port=relay.port)
    harness.wait_for("both workers", lambda: master.connected("direct/0") and
                     master.connected("relayed/0"), 30)

    status, answer = master.post("/api/v1/force", json.dumps(
        {"builders": ["package/deb", "resumed", "failing-after", "too-big", "link-from"],
         "branch": "master"}).encode(), auth=case.auth)
    case.check(status == 202, f"the builds are forced ({status} {answer})")

    def finished():
        builds = [b for b in master.builds() if b["result"] not in ("running",)]
        done = {b["builder"]: b for b in builds if b["result"] != "retry"}
        return done if len(done) == 5 else None

    ended = harness.wait_for("the five builds to end", finished, 100)
    details = {name: master.get(f"/api/v1/builds/{b['id']}") for name, b in ended.items()}
    for name, build in details.items():
        print(f"{name}: {build['result']}: " +
              ", ".join(f"{s['number']} {s['name']} {s['result']}" for s in build["steps"]))

    results = os.path.join(master.data_dir(), "results")

    # The package: 1,000 files intact, the link skipped, after_upload run.
    package = details["package/deb"]
    case.check(package["result"] == "success", f"the package build succeeded ({package['result']})")
    where = os.path.join(results, "package%2Fdeb", "master", str(package["id"]), "repo", "deb")
    case.check(os.path.isdir(where), f"the upload is at {where}")
    if os.path.isdir(where):
        files = [os.path.join(d, f) for d, _, names in os.walk(where) for f in names]
        case.check(len(files) == 1000, f"1,000 files arrived ({len(files)})")
        case.check(not os.path.lexists(os.path.join(where, "link")), "the symlink was not sent")
        big = os.path.join(where, "big.bin")
        expected = hashlib.sha256(b"\0" * BIG + b"tail").hexdigest()
        case.check(os.path.getsize(big) == BIG_SIZE and sha256_file(big) == expected,
                   "the 200 MB file arrived intact (size and SHA-256)")
        sample = open(os.path.join(where, "sub", "deeper", "f7.txt")).read()
        case.check(sample == f"file 7 of build {package['id']}\n",
                   f"a small file's content is intact ({sample!r})")
        mode = os.stat(os.path.join(where, "sub", "f3.txt")).st_mode & 0o777
        case.check(mode == 0o755, f"a file keeps its executable mode ({oct(mode)})")
        count = open(os.path.join(os.path.dirname(where), "count.txt")).read().strip()
        case.check(count == "1000", f"after_upload ran in the uploaded directory ({count})")
    log = master.step_log(package["id"], 2)
    case.check("skipped link: a symbolic link" in log, "the step's log says the link was skipped")
    big_digest = hashlib.sha256(b"\0" * BIG + b"tail").hexdigest()
    case.check("after_upload in " in log and f"{big_digest}  big.bin" in log,
               "after_upload's output is in the step's log")
    web = f"http://localhost:{master.web}"
    log = master.step_log(package["id"], 3)
    case.check(f"master=[{web}]" in log, f"CI_MASTER_URL is the master's web address ({log!r})")
    case.check(f"results=[{web}/results/package%252Fdeb/master/{package['id']}]" in log,
               "CI_RESULTS_URL is this build's results URL, segments percent-encoded")

    # The reconnect mid-upload: a retried build resumes.
    case.check(relay.cut.is_set() and relay.connections >= 2,
               f"the relay cut the first connection and the worker reconnected "
               f"({relay.connections} connections)")
    resumed_builds = sorted((b for b in master.builds("builder=resumed")), key=lambda b: b["id"])
    case.check([b["result"] for b in resumed_builds][-1:] == ["success"] and
               "retry" in [b["result"] for b in resumed_builds],
               f"the cut build was retried and the retry succeeded "
               f"({[b['result'] for b in resumed_builds]})")
    last = resumed_builds[-1]
    master_log = "".join(text for name, text in case.logs().items() if name.startswith("master"))
    stored = re.search(rf"build {last['id']} step 2: upload \"big\" stored in .*: (\d+) bytes "
                       r"received, (\d+) kept from an earlier attempt", master_log)
    case.check(stored is not None, "the master logged the resumed upload")
    if stored:
        received, kept = int(stored.group(1)), int(stored.group(2))
        print(f"resumed upload: {received} bytes received, {kept} kept")
        case.check(kept > 10 * 1000 * 1000 and received + kept == BIG + 3 and
                   received < BIG + 3 - 10 * 1000 * 1000,
                   f"the retry sent only the rest ({received} received, {kept} kept)")
    big = os.path.join(results, "resumed", "master", str(last["id"]), "big", "big.bin")
    case.check(os.path.exists(big) and
               sha256_file(big) == hashlib.sha256(b"\0" * BIG + b"end").hexdigest(),
               "the resumed file arrived intact")
    log = master.step_log(last["id"], 2)
    case.check("were on the master already" in log, "the step's log says the upload resumed")

    # Failures.
    failing = details["failing-after"]
    case.check(failing["result"] == "failure" and
               [s["name"] for s in failing["steps"]] == ["checkout", "make", "upload"],
               f"a failing after_upload fails the step and the build "
               f"({failing['result']}, {[s['name'] for s in failing['steps']]})")
    log = master.step_log(failing["id"], 2)
    case.check("failing now" in log and "exited with status 3" in log,
               f"its output and exit status are in the step's log ({log[-300:]!r})")
    too_big = details["too-big"]
    log = master.step_log(too_big["id"], 2)
    case.check(too_big["result"] == "failure" and "max_upload_size" in log,
               f"an upload over the cap fails, naming max_upload_size ({log[-300:]!r})")
    case.check(not os.path.exists(os.path.join(results, ".partial",
                                               hashlib.sha256(b"\0" * 10).hexdigest() + "-10")),
               "nothing of the refused upload was written")
    link = details["link-from"]
    log = master.step_log(link["id"], 2)
    case.check(link["result"] == "failure" and "symbolic link" in log,
               f"from through a symbolic link fails ({log[-200:]!r})")
    case.check(not os.path.exists(os.path.join(results, "link-from")),
               "nothing of it was stored")
    direct.kill()
    relayed.kill()


if __name__ == "__main__":
    harness.run(main)
