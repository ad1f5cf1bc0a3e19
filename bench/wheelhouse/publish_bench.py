#!/usr/bin/env python3
"""Publishing a wheelhouse: ci-wheelhouse against the s3cmd pipeline it replaces, side by side
against one s3rver on 127.0.0.1.

    publish_bench.py BUILD_DIR [WHEELS]        (WHEELS: default 5000)

The s3cmd pipeline (Debian's s3cmd; its -m takes a bare MIME type):
    s3cmd put -P -m application/python+wheel wheelhouse/*.whl s3://BUCKET/PREFIX/
    s3cmd ls s3://BUCKET/PREFIX/ | sed 's,^.*/\\(.*\\),<a href="\\1">\\1</a><br/>,' \\
      | s3cmd put -P -m text/html - s3://BUCKET/PREFIX/index
Cases: (1) WHEELS small wheels into an empty prefix; (2) one new wheel into that prefix.
Also: the CPU time of `ci-wheelhouse index` over the WHEELS wheels (reading each wheel: its
sha256 and METADATA, then every page). Targets (issue 4): the index for 5,000 wheels under 1 s
of our CPU; the one-wheel publish at least 20x faster than the s3cmd pipeline.
"""
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile


def make_wheel(directory, project, version):
    name = f"{project}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{project}/__init__.py", f"VERSION = '{version}'\n")
        z.writestr(f"{project}-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n"
                   "Requires-Python: >=3.7\nSummary: a benchmark wheel\n")
        z.writestr(f"{project}-{version}.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{project}-{version}.dist-info/RECORD", "")
    return name


def timed(command, env=None, stdin=None, cwd=None):
    """Runs command; returns (wall seconds, CPU seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, stdin=stdin, cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def s3cmd_pipeline(config, wheels, destination):
    """The old procedure, timed as a whole: put the wheels, list, sed, put the index."""
    start = time.perf_counter()
    subprocess.run(["s3cmd", "-c", config, "-q", "put", "-P", "-m", "application/python+wheel",
                    *wheels, destination], check=True, stdout=subprocess.DEVNULL)
    listing = subprocess.run(["s3cmd", "-c", config, "ls", destination], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
    index = subprocess.run(["sed", r"s,^.*/\(.*\),<a href=\"\1\">\1</a><br/>,"], input=listing,
                           check=True, stdout=subprocess.PIPE, text=True).stdout
    subprocess.run(["s3cmd", "-c", config, "-q", "put", "-P", "-m", "text/html", "-",
                    destination + "index"], input=index, text=True, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, index.count("<a href=")


def main():
    build = os.path.abspath(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    tool = os.path.join(build, "tools", "ci-wheelhouse", "ci-wheelhouse")
    s3rver = os.path.join(build, "peers", "node_modules", "s3rver", "bin", "s3rver.js")
    for needed, hint in ((tool, "build libci first"), (s3rver, "scripts/test.sh installs it")):
        if not os.path.exists(needed):
            sys.exit(f"error: {needed} not found ({hint})")
    if shutil.which("s3cmd") is None:
        sys.exit("error: s3cmd not found (Debian package s3cmd)")
    # In memory (/dev/shm) when there is one, as bench/git does: on this VM's ext4, creating
    # thousands of files costs seconds of kernel time that have nothing to do with either side.
    where = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = tempfile.mkdtemp(prefix="libci-wheelhouse-bench-", dir=where)
    server = None
    try:
        wheels_dir = os.path.join(root, "wheels")
        os.makedirs(wheels_dir)
        start = time.perf_counter()
        names = [make_wheel(wheels_dir, f"project{i // 10:04d}", f"1.{i % 10}")
                 for i in range(count)]
        print(f"{count} wheels made in {time.perf_counter() - start:.1f} s "
              f"({count // 10} projects, 10 versions each)")

        data = os.path.join(root, "s3rver")
        os.makedirs(data)
        server = subprocess.Popen(["node", "--openssl-legacy-provider", s3rver, "-d", data, "-a",
                                   "127.0.0.1", "-p", "0", "--configure-bucket", "bench"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        port = None
        for line in server.stdout:
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if found:
                port = found.group(1)
                break
        if port is None:
            sys.exit("error: s3rver did not start")
        endpoint = f"http://127.0.0.1:{port}"
        config = os.path.join(root, "s3cfg")
        with open(config, "w") as out:
            out.write(f"[default]\naccess_key = S3RVER\nsecret_key = S3RVER\n"
                      f"host_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\n"
                      "use_https = False\nsignature_v2 = False\nbucket_location = us-east-1\n")
        env = dict(os.environ, AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
                   AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

        index_dir = os.path.join(root, "index")
        shutil.copytree(wheels_dir, index_dir)
        index_wall, index_cpu = timed([tool, "index", index_dir], env=env)
        print(f"index of {count} wheels (ci-wheelhouse index): {index_cpu:.2f} s CPU, "
              f"{index_wall:.2f} s wall (target: under 1 s CPU)")

        publish = [tool, "publish", wheels_dir, "s3://bench/ours", "--endpoint-url", endpoint,
                   "--acl", "public-read"]
        ours_full, ours_full_cpu = timed(publish, env=env)
        theirs_full, links = s3cmd_pipeline(config, [os.path.join(wheels_dir, n) for n in names],
                                            "s3://bench/theirs/")
        print(f"{count} wheels into an empty prefix: ci-wheelhouse {ours_full:.2f} s "
              f"({ours_full_cpu:.2f} s CPU), s3cmd pipeline {theirs_full:.2f} s "
              f"({links} links): {theirs_full / ours_full:.1f}x faster")

        # One new wheel, three rounds alternating, each side's best: both get only the new
        # wheel (for ours, a directory holding it).
        ours_runs, theirs_runs = [], []
        for round_ in range(3):
            new_dir = os.path.join(root, f"new{round_}")
            os.makedirs(new_dir)
            new = make_wheel(new_dir, f"project{9000 + round_}", "2.0")
            publish_one = [tool, "publish", new_dir, "s3://bench/ours", "--endpoint-url",
                           endpoint, "--acl", "public-read"]
            ours_runs.append(timed(publish_one, env=env))
            theirs_runs.append(s3cmd_pipeline(config, [os.path.join(new_dir, new)],
                                              "s3://bench/theirs/"))
        ours_one, ours_one_cpu = min(ours_runs)
        theirs_one, links = min(theirs_runs)
        print(f"1 new wheel into {count} (best of 3): ci-wheelhouse {ours_one:.3f} s "
              f"({ours_one_cpu:.3f} s CPU), s3cmd pipeline {theirs_one:.2f} s ({links} links): "
              f"{theirs_one / ours_one:.1f}x faster (target >= 20x)")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
