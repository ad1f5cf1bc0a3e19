#!/usr/bin/env python3
"""Issue 18: `worker_files` on a worker class. The master reads each SOURCE and sends it to the
class's workers over the TLS worker connection right after login; a real ci-worker writes them
(mode 0600, new directories 0700) before it takes a build, so the build's step reads them. The
contents never appear in the master's or the worker's log (a step that prints the token shows
"[redacted]"), nor in any process's arguments. A worker that reconnects (the master killed -9
and started again) gets them again: a file changed on the worker is put back; the relay between
them never sees a content in clear. A latent (EC2) worker logging in with a one-time token gets
its own class's files. A worker whose destination is behind a symbolic link refuses to write
through it and stops without running a build. check-config and `ci-master start` refuse a
missing SOURCE, a DEST with "..", and a file over 1 MiB, naming file:line and the key."""

import hashlib
import os
import signal
import subprocess
import uuid

import master_harness as harness
from master_e2e_tls import Proxy


def check_config(case, text, name):
    """Runs `ci-master check-config` on `text` (written beside the case's secrets); returns
    (exit status, its output)."""
    path = os.path.join(case.tmp, name)
    with open(path, "w") as out:
        out.write(text)
    run = subprocess.run([harness.MASTER, "check-config", path], capture_output=True, text=True,
                         timeout=60)
    return run.returncode, run.stdout + run.stderr, path


def line_of(text, needle):
    """The 1-based line of `text` that holds `needle`."""
    return next(i for i, line in enumerate(text.split("\n"), 1) if needle in line)


def main(case):
    secrets = os.path.join(case.tmp, "secrets")
    os.makedirs(secrets)
    token = "ghp_" + uuid.uuid4().hex + uuid.uuid4().hex[:4]
    acceptance = ("# acceptance tests\nregion: us-west-2\npassword: " + uuid.uuid4().hex +
                  "\n")
    key = ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + uuid.uuid4().hex + uuid.uuid4().hex +
           "\n-----END OPENSSH PRIVATE KEY-----\n")
    for name, content in (("token", token + "\n"), ("acceptance.yml", acceptance),
                          ("id_ed25519", key)):
        with open(os.path.join(secrets, name), "w") as out:
            out.write(content)
    case.secrets += [token, acceptance.split("password: ")[1].strip(), key.split("\n")[1]]

    work = os.path.join(case.tmp, "worker0")
    absolute_key = os.path.join(case.tmp, "home", "ci", ".ssh", "id_ed25519")
    token_path = os.path.join(work, ".config", "ci", "token")
    acceptance_path = os.path.join(work, "acceptance.yml")
    files = (f'worker_files: {{.config/ci/token: secrets/token, '
             f'acceptance.yml: {secrets}/acceptance.yml, '
             f'"{absolute_key}": secrets/id_ed25519}}')
    # The static class `remote`, and a latent (EC2) class whose workers log in with a token.
    config = case.remote_config(
        "  latent: {ami: ci-image, worker_files: {latent/token: secrets/token}}\n").replace(
        "max_builds: 2}", "max_builds: 2, " + files + "}")
    config += f"""builders:
  files:
    repository: demo
    workers: [remote]
    steps:
      - name: read
        run: >-
          stat -c "token mode %a" {token_path} &&
          stat -c "directory mode %a" {os.path.dirname(token_path)} &&
          stat -c "key mode %a" {absolute_key} &&
          echo "acceptance $(sha256sum < {acceptance_path} | cut -c1-64)" &&
          echo "token: $(cat {token_path})" && cat {token_path}
schedulers:
  branches: {{type: branch, repository: demo, builders: [files], branches: ["feature/*"],
             tree_stable_timer: 1s}}
"""
    config_path = case.write_config(config)
    status, output, _ = check_config(case, config, "ok.yml")
    case.check(status == 0 and "OK" in output, f"check-config accepts the config ({output!r})")

    master = case.start_master(config_path)
    # Through a relay that records every byte (and follows the master to its new port after a
    # restart).
    relay = Proxy(master.worker_port)
    relay.start()
    worker = case.start_worker(master, 0, port=relay.port)
    harness.wait_for("the worker connected", lambda: master.connected(worker.name), 30)
    # Connected in the API once the master queued the files; written a moment later (each
    # appears whole: renamed into place).
    harness.wait_for("the worker's files", lambda: all(
        os.path.exists(p) for p in (token_path, acceptance_path, absolute_key)), 30)
    case.check(open(token_path).read() == token + "\n" and
               open(acceptance_path).read() == acceptance and open(absolute_key).read() == key,
               "the worker wrote every file with the master's content")
    modes = {p: os.stat(p).st_mode & 0o7777 for p in (token_path, acceptance_path, absolute_key)}
    case.check(all(mode == 0o600 for mode in modes.values()), f"each file is 0600 ({modes})")
    case.check(os.stat(os.path.dirname(token_path)).st_mode & 0o7777 == 0o700 and
               os.stat(os.path.dirname(absolute_key)).st_mode & 0o7777 == 0o700,
               "the directories it created are 0700")
    case.check(not [n for n in os.listdir(work) if ".tmp-" in n], "no temporary file is left")

    # Nobody's arguments hold a secret (the master's and the worker's command lines).
    for process in (master.process, worker.process):
        argv = open(f"/proc/{process.pid}/cmdline", "rb").read().decode(errors="replace")
        case.check(token not in argv and "secrets/token" not in argv,
                   f"pid {process.pid}'s arguments hold no worker file")

    tip = case.repo.branch("feature/files", ["files.txt"])
    master.push("feature/files", harness.ZERO, tip)
    build = harness.wait_for("the build", lambda: master.finished_build(tip))
    log = master.step_log(build["id"])
    case.check(build["result"] == "success", f"the build succeeded ({build['result']}): {log!r}")
    case.check("token mode 600" in log and "key mode 600" in log, "its step saw mode 0600")
    case.check("directory mode 700" in log, "and a 0700 directory")
    expected = hashlib.sha256(acceptance.encode()).hexdigest()
    case.check(f"acceptance {expected}" in log, "its step read the acceptance config's content")
    case.check(token not in log and "token: [redacted]" in log,
               "the token the step printed is redacted from the build log")

    # A reconnect gets the files again: change one on the worker, restart the master.
    with open(token_path, "w") as out:
        out.write("tampered\n")
    os.remove(acceptance_path)
    master.kill(signal.SIGKILL)
    master.start()
    relay.upstream_port = master.worker_port
    harness.wait_for("the worker back", lambda: master.connected(worker.name), 60)
    harness.wait_for("the files written again", lambda: os.path.exists(acceptance_path), 30)
    case.check(open(token_path).read() == token + "\n" and
               open(acceptance_path).read() == acceptance,
               "after the reconnect the worker has the master's files again")
    case.check(worker.log().count("wrote worker file \".config/ci/token\" (mode 0600)") == 2,
               "the worker says it wrote the token at each login (by path)")
    wire = relay.capture()
    case.check(len(wire) > 2 * len(acceptance) and token.encode() not in wire and
               token.encode().hex().encode() not in wire and
               acceptance.encode().hex().encode() not in wire,
               f"the files crossed the network only inside TLS ({len(wire)} bytes recorded)")

    # A latent worker (what an EC2 instance runs, with the token its user data holds) gets its
    # class's files too.
    status, issued = master.post("/api/v1/workers/tokens", b'{"class": "latent"}',
                                 auth=case.auth)
    case.check(status == 201, f"a one-time token for a latent worker ({status})")
    case.secrets.append(issued["token"])
    latent = case.start_worker(master, 5, name=issued["name"], token=issued["token"])
    latent_token = os.path.join(case.tmp, "worker5", "latent", "token")
    harness.wait_for("the latent worker's file", lambda: os.path.exists(latent_token), 30)
    case.check(open(latent_token).read() == token + "\n" and
               os.stat(latent_token).st_mode & 0o7777 == 0o600,
               "the latent worker got its class's file, 0600")
    case.check(not os.path.exists(os.path.join(case.tmp, "worker5", "acceptance.yml")),
               "and not the other class's")

    # A destination behind a symbolic link: worker 1 refuses and stops, no build runs there.
    elsewhere = os.path.join(case.tmp, "elsewhere")
    os.makedirs(elsewhere)
    os.makedirs(os.path.join(case.tmp, "worker1"))
    os.symlink(elsewhere, os.path.join(case.tmp, "worker1", ".config"))
    other = case.start_worker(master, 1)
    status = other.process.wait(timeout=60)
    case.check(status == 3, f"the worker whose file is behind a symbolic link exits 3 ({status})")
    case.check("symbolic link" in other.log() and "worker file .config/ci/token" in other.log(),
               "it says which file and why")
    case.check(os.listdir(elsewhere) == [], "nothing was written through the link")
    case.check("build " not in other.log(), "it ran no build")

    # Bad configs: check-config names file:line and the key; ci-master start refuses them too.
    base = config
    bad = base.replace("secrets/token", "secrets/missing", 1)
    status, output, path = check_config(case, bad, "missing.yml")
    case.check(status == 1 and
               f"{path}:{line_of(bad, 'secrets/missing')}:" in output and
               "slaves.remote.worker_files..config/ci/token: read " in output and
               "No such file or directory" in output,
               f"a missing SOURCE is refused at its line ({output!r})")
    start = subprocess.run([harness.MASTER, "start", "--config", path, "--data-dir",
                            os.path.join(case.tmp, "bad-data")], capture_output=True, text=True,
                           timeout=60)
    case.check(start.returncode == 1 and "secrets/missing" in start.stderr,
               f"ci-master start refuses it ({start.returncode})")

    bad = base.replace(".config/ci/token:", "../escape:")
    status, output, path = check_config(case, bad, "escape.yml")
    case.check(status == 1 and f"{path}:{line_of(bad, '../escape')}:" in output and
               "slaves.remote.worker_files.../escape: has a \"..\" segment" in output,
               f"a DEST with .. is refused ({output!r})")

    with open(os.path.join(secrets, "big"), "w") as out:
        out.write("x" * (1024 * 1024 + 1))
    bad = base.replace("secrets/token", "secrets/big", 1)
    status, output, path = check_config(case, bad, "big.yml")
    case.check(status == 1 and "slaves.remote.worker_files..config/ci/token: " in output and
               "is larger than 1048576 bytes (1 MiB)" in output,
               f"a SOURCE over 1 MiB is refused ({output!r})")

    logs = case.logs()
    master_logs = "".join(text for name, text in logs.items() if name.startswith("master"))
    case.check("sent it 3 worker file(s)" in master_logs and
               "sent it 1 worker file(s)" in master_logs, "the master logs how many it sent")


if __name__ == "__main__":
    harness.run(main)
