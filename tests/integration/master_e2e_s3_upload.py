#!/usr/bin/env python3
"""Upload steps to s3:// (issue 16) through a real ci-master, real ci-worker processes and a
real S3 server (s3rver, which checks SigV4 signatures), read back with botocore (an independent
client):
- a directory (nested files, one of 20 MB: a multipart upload of 8 MiB parts, a symbolic link
  and a FIFO, skipped and named in the step's log) arrives as PREFIX/RELATIVE-PATH objects with
  the same SHA-256s; a single file as PREFIX/NAME; steps do not see the secret key, and no log
  shows it;
- an upload to a missing bucket fails its step naming the key and S3's code (NoSuchBucket);
- an upload to a server that is down fails its step saying so; `from` through a symbolic link
  fails its step and sends nothing;
- a 200 MB file: the worker's peak RSS grows by at most a few parts (the number is printed).
SKIPs (exit 77) loudly without s3rver (LIBCI_S3RVER, node) or botocore.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import master_harness as harness

SECRET = "S3RVER"  # s3rver's only account: key id and secret
BIG = 20 * 1000 * 1000  # > the worker's 8 MiB part size: three parts
HUGE = 200 * 1000 * 1000
PART = 8 << 20

MAKE_TREE = f"""set -e
rm -rf out && mkdir -p out/sub/deeper
echo "index of build $CI_BUILD_ID" > out/index.html
echo "a" > out/sub/a.txt
printf 'b%.0s' $(seq 1 5000) > out/sub/deeper/b.txt
: > out/sub/empty.txt
yes libci-s3-upload | head -c {BIG} > out/big.bin
ln -s /etc/passwd out/link
mkfifo out/fifo
echo "AWS variables the step sees: $(env | grep '^AWS_' | cut -d= -f1 | sort | tr '\\n' ' ')"
"""


def big_content():
    line = b"libci-s3-upload\n"
    return (line * (BIG // len(line) + 1))[:BIG]


def config(case):
    return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  up: {{passwords: ["{case.passwords[0]}"], max_builds: 2}}
  down: {{passwords: ["{case.passwords[1]}"]}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  docs:
    repository: demo
    workers: [up]
    steps:
      - {{name: make, run: {json.dumps(MAKE_TREE)}}}
      - {{name: upload-tree, upload: {{from: out, to: "s3://artifacts/builds/docs/"}}}}
      - {{name: upload-one, upload: {{from: out/big.bin, to: s3://artifacts/single}}}}
  missing-bucket:
    repository: demo
    workers: [up]
    steps:
      - {{name: make, run: "mkdir -p out && echo x > out/x.txt"}}
      - {{name: upload, upload: {{from: out, to: s3://no-such-bucket/p}}}}
      - {{name: after, run: "echo not reached"}}
  down:
    repository: demo
    workers: [down]
    steps:
      - {{name: make, run: "mkdir -p out && echo x > out/x.txt"}}
      - {{name: upload, upload: {{from: out, to: s3://artifacts/down}}}}
  link-from:
    repository: demo
    workers: [up]
    steps:
      - {{name: make, run: "mkdir -p real && echo x > real/x.txt && ln -sfn real linked"}}
      - {{name: upload, upload: {{from: linked/x.txt, to: s3://artifacts/link}}}}
  huge:
    repository: demo
    workers: [up]
    steps:
      - {{name: make, run: "truncate -s {HUGE} huge.bin"}}
      - {{name: upload, upload: {{from: huge.bin, to: s3://artifacts/huge}}}}
schedulers:
  force: {{type: force, builders: [docs, missing-bucket, down, link-from, huge]}}
"""


def start_s3rver(case):
    s3rver, node = os.environ.get("LIBCI_S3RVER"), shutil.which("node")
    if not s3rver or not os.path.isfile(s3rver) or not node:
        print("SKIP: s3rver not found (LIBCI_S3RVER unset: scripts/test.sh installs it with npm)")
        sys.exit(77)
    data = os.path.join(case.tmp, "s3rver")
    os.makedirs(data)
    log_path = os.path.join(case.tmp, "s3rver.log")
    log = open(log_path, "w")
    process = subprocess.Popen([node, "--openssl-legacy-provider", s3rver, "-d", data,
                                "-a", "127.0.0.1", "-p", "0"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    found = harness.wait_for("s3rver to listen", lambda: re.search(
        r"listening on 127\.0\.0\.1:(\d+)", open(log_path).read()), 60)
    return process, f"http://127.0.0.1:{found.group(1)}"


def s3_client(endpoint):
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        print("SKIP: botocore not found (Debian's python3-botocore)")
        sys.exit(77)
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=SECRET,
        aws_secret_access_key=SECRET, config=Config(s3={"addressing_style": "path"}))


def objects(s3, prefix):
    """{key: (size, sha256)} of every object under `prefix`, read back in blocks."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="artifacts", Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket="artifacts", Key=item["Key"])["Body"]
            digest, size = hashlib.sha256(), 0
            for block in iter(lambda: body.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
            out[item["Key"]] = (size, digest.hexdigest())
    return out


def memory_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def force(case, master, builders):
    status, answer = master.post("/api/v1/force", json.dumps(
        {"builders": builders, "branch": "master"}).encode(), auth=case.auth)
    case.check(status == 202, f"{builders} forced ({status} {answer})")

    def finished():
        done = {b["builder"]: b for b in master.builds()
                if b["builder"] in builders and b["result"] not in ("running", "retry")}
        return done if len(done) == len(builders) else None

    ended = harness.wait_for(f"{builders} to end", finished, 90)
    details = {name: master.get(f"/api/v1/builds/{b['id']}") for name, b in ended.items()}
    for name, build in details.items():
        print(f"{name}: {build['result']}: " +
              ", ".join(f"{s['number']} {s['name']} {s['result']}" for s in build["steps"]))
    return details


def main(case):
    s3 = s3_client(None)  # SKIPs first without botocore
    server, endpoint = start_s3rver(case)
    try:
        uploads(case, s3_client(endpoint), endpoint)
    finally:
        server.kill()
        server.wait()


def uploads(case, s3, endpoint):
    s3.create_bucket(Bucket="artifacts")

    master = case.start_master(case.write_config(config(case)))
    # The workers' credentials and endpoint, from their environment as the AWS CLI reads them.
    os.environ.update({"AWS_ACCESS_KEY_ID": SECRET, "AWS_SECRET_ACCESS_KEY": SECRET,
                       "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint})
    up = case.start_worker(master, 0, name="up/0")
    os.environ["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    case.start_worker(master, 1, name="down/0")
    harness.wait_for("both workers", lambda: master.connected("up/0") and
                     master.connected("down/0"), 30)

    details = force(case, master, ["docs", "missing-bucket", "down", "link-from"])

    # The tree: every regular file, same bytes, under the prefix; the link and FIFO skipped.
    docs = details["docs"]
    case.check(docs["result"] == "success", f"the docs build succeeded ({docs['result']})")
    stored = objects(s3, "builds/docs/")
    expected = {
        "builds/docs/index.html": f"index of build {docs['id']}\n".encode(),
        "builds/docs/sub/a.txt": b"a\n",
        "builds/docs/sub/deeper/b.txt": b"b" * 5000,
        "builds/docs/sub/empty.txt": b"",
        "builds/docs/big.bin": big_content(),
    }
    want = {k: (len(v), hashlib.sha256(v).hexdigest()) for k, v in expected.items()}
    case.check(stored == want, f"the tree arrived as PREFIX/RELATIVE objects with the same "
               f"SHA-256s ({sorted(stored)})")
    log = master.step_log(docs["id"], 2)
    case.check("skipped link: a symbolic link" in log and "skipped fifo: not a regular file" in log,
               f"the step's log names the skipped link and FIFO ({log[:400]!r})")
    case.check(f"5 files, {sum(len(v) for v in expected.values())} bytes to "
               "s3://artifacts/builds/docs/" in log and "credentials from environment" in log,
               "the step's log says what goes where and where the credentials came from")
    case.check("builds/docs/big.bin: 20000000 bytes in 3 parts (multipart upload)" in log,
               "the 20 MB file went as a multipart upload of three parts")
    case.check(re.search(r"uploaded 5 files, \d+ bytes to s3://artifacts/builds/docs/ in ", log)
               is not None, "the step's log has the total")
    single = objects(s3, "single/")
    case.check(single == {"single/big.bin": want["builds/docs/big.bin"]},
               f"a single file goes as PREFIX/NAME ({sorted(single)})")
    make_log = master.step_log(docs["id"], 1)
    seen = re.search(r"AWS variables the step sees: (.*)", make_log)
    case.check(seen is not None and "AWS_SECRET_ACCESS_KEY" not in seen.group(1)
               and "AWS_ACCESS_KEY_ID" in seen.group(1),
               f"steps do not see the secret key ({seen.group(1) if seen else make_log!r})")

    # A missing bucket: the step fails naming the file, its key and S3's code.
    missing = details["missing-bucket"]
    log = master.step_log(missing["id"], 2)
    case.check(missing["result"] == "failure" and
               [s["name"] for s in missing["steps"]] == ["checkout", "make", "upload"],
               f"an upload to a missing bucket fails the build at that step "
               f"({missing['result']}, {[s['name'] for s in missing['steps']]})")
    case.check("x.txt was not uploaded to s3://no-such-bucket/p/x.txt: PUT "
               "s3://no-such-bucket/p/x.txt: 404 NoSuchBucket" in log,
               f"its log names the key and NoSuchBucket ({log[-400:]!r})")

    # A server that is down.
    down = details["down"]
    log = master.step_log(down["id"], 2)
    case.check(down["result"] == "failure" and
               "x.txt was not uploaded to s3://artifacts/down/x.txt: PUT" in log and
               "after 4 attempts" in log,
               f"an upload to a server that is down fails, saying so ({log[-400:]!r})")

    # `from` through a symbolic link: the step fails, nothing is sent.
    link = details["link-from"]
    log = master.step_log(link["id"], 2)
    case.check(link["result"] == "failure" and "is a symbolic link" in log,
               f"from through a symbolic link fails the step ({log[-300:]!r})")
    case.check(objects(s3, "link/") == {}, "nothing of it was sent")

    # 200 MB: the worker's peak RSS (VmHWM) before and after.
    sanitized = harness.sanitized(up.process.pid)
    before = memory_kib(up.process.pid, "VmHWM")
    huge = force(case, master, ["huge"])["huge"]
    after = memory_kib(up.process.pid, "VmHWM")
    print(f"worker peak RSS: {before} KiB before the 200 MB upload, {after} KiB after "
          f"(+{after - before} KiB; a part is {PART >> 10} KiB)")
    case.check(huge["result"] == "success", f"the 200 MB upload succeeded ({huge['result']})")
    stored = objects(s3, "huge/")
    case.check(stored == {"huge/huge.bin": (HUGE, hashlib.sha256(b"\0" * HUGE).hexdigest())},
               "the 200 MB file arrived intact (size and SHA-256)")
    log = master.step_log(huge["id"], 2)
    case.check("huge/huge.bin: 200000000 bytes in 24 parts (multipart upload)" in log,
               f"in 24 parts ({log[-300:]!r})")
    if sanitized:
        print("note: the worker runs under a sanitizer: its RSS is not checked")
    else:
        case.check(after - before < 3 * (PART >> 10),
                   f"the worker's peak RSS grew by less than three parts (+{after - before} KiB)")

    logs = "".join(text for name, text in case.logs().items() if name != "s3rver.log")
    logs += "".join(master.step_log(b["id"], n) for b in details.values() for n in (1, 2))
    case.check(SECRET not in logs, "no log of the master or the workers, no step's log shows "
               "the AWS key")


if __name__ == "__main__":
    harness.run(main)
