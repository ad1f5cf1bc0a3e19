#!/usr/bin/env python3
"""Merge-forward checkout: libci (ci-worker checkout) against the git CLI doing the same steps.

    merge_bench.py CI_WORKER [WORKDIR]      (WORKDIR: default /dev/shm, else the temp dir)

Generates a repository of about 20,000 files and 2,000 commits (git fast-import), serves it
with git daemon on 127.0.0.1, then times
(a) cold: clone, check out the branch and merge master into it (best of three, alternating);
(b) warm: fetch 10 new commits, check out and merge (best of three rounds). Both sides leave the same state: the
merge commit checked out, nothing untracked or ignored left (git: checkout -f, clean -ffdx,
merge). Prints times, the libci/git ratios and each side's peak RSS.
Targets (issue 5): warm at most 0.8x git's time, cold at most 1.0x.
"""
import os
import socket
import shutil
import subprocess
import sys
import tempfile
import time

FILES = 20000
COMMITS = 2000
IDENTITY = {
    "GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@example.org",
    "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "dev@example.org",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
}


def env(extra=None):
    e = dict(os.environ)
    e.update(IDENTITY)
    e.update(extra or {})
    return e


def git(*args, cwd=None, extra=None, quiet=True):
    return subprocess.run(["git", *args], cwd=cwd, env=env(extra), check=True,
                          stdout=subprocess.PIPE if quiet else None, text=True).stdout


def fast_import_stream(commits, files, start_mark=1, parent=None, branch="master", seed=0):
    """A fast-import stream: the first commit adds every file; later ones change ten each."""
    out = []
    mark = start_mark
    when = 1700000000 + seed * 100000
    for c in range(commits):
        out.append(f"commit refs/heads/{branch}\nmark :{mark}\n")
        out.append(f"committer Dev <dev@example.org> {when + c * 60} +0000\n")
        msg = f"commit {c} on {branch}"
        out.append(f"data {len(msg)}\n{msg}\n")
        if parent is not None and c == 0:
            out.append(f"from {parent}\n")
        if c == 0 and parent is None:
            for f in range(files):
                body = f"file {f}\n" + "content line\n" * 20
                out.append(f"M 100644 inline src/d{f % 200}/f{f}.txt\ndata {len(body)}\n{body}\n")
        else:
            for k in range(10):
                f = (c * 37 + k * 101 + seed) % files
                body = f"file {f} changed in {branch} commit {c}\n" + "content line\n" * 20
                out.append(f"M 100644 inline src/d{f % 200}/f{f}.txt\ndata {len(body)}\n{body}\n")
        mark += 1
    return "".join(out)


def make_repo(path):
    git("init", "-q", "-b", "master", path)
    stream = fast_import_stream(COMMITS, FILES)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream, text=True,
                   env=env(), check=True)
    # A feature branch of 20 commits from master~50, touching other files.
    base = git("rev-parse", "master~50", cwd=path).strip()
    stream = fast_import_stream(20, FILES, start_mark=100000, parent=base, branch="feature", seed=7)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream, text=True,
                   env=env(), check=True)
    git("checkout", "-q", "-f", "master", cwd=path)
    # Packed, as a hosted repository is, so that the server's side costs the same for both.
    git("repack", "-a", "-d", "-q", cwd=path)


def add_commits(path, count=10, round_=0):
    """Ten new commits: five on master, five on feature, each round on other files."""
    # Disjoint files (master 5000-6300, feature 9000-10300, master's own history after the
    # fork 12150-14900): no conflict.
    for branch, seed in (("master", 5000 + 100 * round_), ("feature", 9000 + 100 * round_)):
        tip = git("rev-parse", branch, cwd=path).strip()
        stream = fast_import_stream(count // 2, FILES, start_mark=200000, parent=tip,
                                    branch=branch, seed=seed)
        subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=stream, text=True,
                       env=env(), check=True)


def run_timed(commands, cwd):
    """Runs each command in turn; returns (seconds, peak RSS in MiB of the largest of them,
    its own children included, as wait4 reports them)."""
    peak = 0
    start = time.perf_counter()
    for command, extra in commands:
        child = subprocess.Popen(command, cwd=cwd, env=env(extra),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise subprocess.CalledProcessError(child.returncode, command)
        peak = max(peak, usage.ru_maxrss)
    return time.perf_counter() - start, peak / 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_merge_steps(clone):
    date = git("log", "-1", "--format=%cd", "--date=raw", "origin/feature", cwd=clone).strip()
    merge_env = {"GIT_AUTHOR_NAME": "libci", "GIT_AUTHOR_EMAIL": "ci@localhost",
                 "GIT_COMMITTER_NAME": "libci", "GIT_COMMITTER_EMAIL": "ci@localhost",
                 "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    # What ci-worker checkout guarantees, step for step: the branch tip forced over any edits,
    # untracked and ignored files removed (git clean -ffdx, as buildbot's fresh checkouts did),
    # then the merge.
    return [(["git", "checkout", "-q", "-f", "--detach", "origin/feature"], None),
            (["git", "clean", "-q", "-ffdx"], None),
            (["git", "merge", "-q", "--no-ff", "--no-stat", "-m", "Merge forward.",
              "origin/master"], merge_env)]


def main():
    worker = os.path.abspath(sys.argv[1])
    # By default in memory (/dev/shm) when there is one: on a disk, creating 20,000 files can
    # cost seconds of kernel time that are the same for both sides and vary from run to run
    # (seen here: ext4 scanning recently deleted inodes, 6-7 s of system time for one checkout
    # by either side), hiding the difference this measures. Pass WORKDIR to measure a disk.
    where = sys.argv[2] if len(sys.argv) > 2 else (
        "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None)
    root = tempfile.mkdtemp(prefix="libci-merge-bench-", dir=where)
    fs = subprocess.run(["stat", "-f", "-c", "%T", root], stdout=subprocess.PIPE, text=True).stdout.strip()
    print(f"working in {root} ({fs or 'unknown file system'})")
    try:
        origin = os.path.join(root, "origin")
        t = time.perf_counter()
        make_repo(origin)
        count = int(git("rev-list", "--count", "--all", cwd=origin))
        files = int(git("ls-tree", "-r", "--name-only", "master", cwd=origin).count("\n"))
        print(f"repository: {files} files, {count} commits (made in {time.perf_counter() - t:.1f} s)")
        # Served by git daemon, as a remote is: with file:// URLs libgit2 would build the pack
        # itself (its local transport), which no worker does against a real server.
        port = free_port()
        daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all",
                                   f"--base-path={root}", "--listen=127.0.0.1", f"--port={port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"git://127.0.0.1:{port}/origin"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)

        def ours_cmd(n):
            return [worker, "checkout", url, os.path.join(root, f"ours{n}"), "--branch",
                    "feature", "--cache", os.path.join(root, f"cache{n}")]

        def git_cold_run(n):
            clone = os.path.join(root, f"theirs{n}")
            seconds, rss = run_timed([(["git", "clone", "-q", "--no-checkout", url, clone],
                                       None)], root)
            more, more_rss = run_timed(git_merge_steps(clone), clone)
            return seconds + more, max(rss, more_rss), clone

        # Cold runs alternate, best of three each: creating 20,000 files costs the file system
        # more right after others were deleted, whichever side comes first.
        ours_runs, git_runs = [], []
        for n in range(3):
            ours_runs.append(run_timed([(ours_cmd(n), None)], root))
            git_runs.append(git_cold_run(n))
        ours_cold, ours_cold_rss = min(ours_runs)
        git_cold, git_cold_rss, _ = min(git_runs)
        clone = git_runs[-1][2]
        last = 2

        # Warm runs: three rounds of ten new commits, each side fetching them in turn.
        ours_runs, git_runs = [], []
        for round_ in range(3):
            add_commits(origin, round_=round_)
            ours_runs.append(run_timed([(ours_cmd(last), None)], root))
            fetch, fetch_rss = run_timed([(["git", "fetch", "-q", "origin"], None)], clone)
            more, more_rss = run_timed(git_merge_steps(clone), clone)
            git_runs.append((fetch + more, max(fetch_rss, more_rss)))
        ours_warm, ours_warm_rss = min(ours_runs)
        git_warm, git_warm_rss = min(git_runs)

        ours_head = subprocess.run(["git", "rev-parse", "HEAD"],
                                   cwd=os.path.join(root, f"ours{last}"),
                                   env=env(), check=True, stdout=subprocess.PIPE, text=True).stdout
        git_head = git("rev-parse", "HEAD", cwd=clone)
        same = "same merge commit" if ours_head == git_head else "DIFFERENT merge commits"
        print(f"cold: libci {ours_cold:.2f} s (peak RSS {ours_cold_rss:.0f} MiB), "
              f"git {git_cold:.2f} s (peak RSS {git_cold_rss:.0f} MiB): "
              f"{ours_cold / git_cold:.2f}x (target <= 1.0x)")
        print(f"warm: libci {ours_warm:.2f} s (peak RSS {ours_warm_rss:.0f} MiB), "
              f"git {git_warm:.2f} s (peak RSS {git_warm_rss:.0f} MiB): "
              f"{ours_warm / git_warm:.2f}x (target <= 0.8x)")
        print(f"result: {same}")
        daemon.terminate()
        daemon.wait()
        return 0 if ours_head == git_head else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
