#!/usr/bin/env python3
"""`ci-deploy` with the `process` runtime, over ssh to the real OpenSSH sshd on 127.0.0.1.

sshd runs unprivileged on a port the kernel picks (tests/support/git_ssh_server.py), with a
generated host key and a generated user key (`--identity`; host keys through `--ssh-config`,
no agent). The target's data_dir is in the case's temp dir; the master it runs is the real
ci-master, behind small wrapper scripts so that each "binary" is a different release:
 - check, then status (not running, exit 1), start (exit 0), status (version, uptime, health,
   builds, workers), also with the agent's key instead of --identity, and through the `local`
   target;
 - the master's drain route: authenticated and CSRF-safe (401, 403, 415), then
   `update --timeout 1` while a build runs: drained, refused (exit 1), undrained, the master
   untouched;
 - a build runs; `update` to a new binary drains the master, waits for the build (countdown),
   the master is untouched meanwhile and a build forced then stays queued (a free slot
   notwithstanding); it swaps once the build ended, and the new master (not drained) runs the
   queued build; Zulip (a local fake) gets before and after;
 - `update` to a binary whose master never becomes healthy: rolled back (exit 2), the previous
   release runs again and is healthy; Zulip says so;
 - the supervisor restarts a master killed with SIGKILL; `logs` shows the supervisor's notes;
   `logs --follow` streams;
 - `restart` (the same release, the config written again); a deploy lock held by another
   ci-deploy refuses `stop`;
 - `stop` (exit 0; nothing left running), status (exit 1);
 - a target that does not answer: exit 3.
No secret of the config appears in ci-deploy's output, and the config on the target is 0600.
The docker and podman runtimes need a container engine, which this machine lacks: their
commands are checked as generated text by test_deploy (unit), not run here.
"""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import master_harness as harness  # noqa: E402

DEPLOY = os.path.join(harness.BUILD, "tools", "ci-deploy", "ci-deploy")
SOURCE = os.environ["LIBCI_SOURCE_DIR"]


def main(case):
    print("NOTE: no Docker engine on this machine: the docker and podman runtimes are checked "
          "as generated command lines (test_deploy), not run", flush=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        print("SKIP: sshd not found (Debian package openssh-server): ci-deploy over ssh not "
              "tested", flush=True)
        sys.exit(77)
    tmp = case.tmp
    run = lambda *args, **kw: subprocess.run(args, check=True, capture_output=True, **kw)  # noqa
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deployer", "-f", f"{tmp}/key")
    shutil.copy(f"{tmp}/key.pub", f"{tmp}/authorized_keys")
    server_out = open(f"{tmp}/sshd-server.log", "w")
    server = subprocess.Popen([sys.executable, f"{SOURCE}/tests/support/git_ssh_server.py",
                               f"{tmp}/sshd", f"{tmp}/authorized_keys"],
                              stdout=server_out, stderr=subprocess.STDOUT)
    try:
        deploy_cases(case, server)
    finally:
        server.kill()
        server.wait()


def deploy_cases(case, server):
    tmp = case.tmp
    harness.wait_for("sshd's port", lambda: "host key:" in open(f"{tmp}/sshd-server.log").read(),
                     20)
    lines = open(f"{tmp}/sshd-server.log").read().splitlines()
    port = int(next(l for l in lines if l.startswith("listening on")).rsplit(":", 1)[1])
    host_key = next(l for l in lines if l.startswith("host key: "))[len("host key: "):]
    with open(f"{tmp}/known_hosts", "w") as out:
        out.write(f"[127.0.0.1]:{port} {host_key}\n")
    with open(f"{tmp}/ssh_config", "w") as out:
        out.write(f"Host *\n  UserKnownHostsFile {tmp}/known_hosts\n")
    user = pwd.getpwuid(os.getuid()).pw_name
    data_dir = f"{tmp}/srv"

    # Three "binaries": the real ci-master behind wrappers that differ, and one that never
    # serves (it prints a version, then exits at once, so that the supervisor restarts it).
    binaries = {}
    for name in ("v1", "v2"):
        binaries[name] = f"{tmp}/ci-master-{name}"
        with open(binaries[name], "w") as out:
            out.write(f"#!/bin/sh\n# release {name}\nexec {harness.MASTER} \"$@\"\n")
    binaries["broken"] = f"{tmp}/ci-master-broken"
    with open(binaries["broken"], "w") as out:
        out.write("#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'ci-master 9.9 (broken)'; "
                  "exit 0; fi\necho 'this master cannot start' >&2\nexit 1\n")
    for path in binaries.values():
        os.chmod(path, 0o755)

    zulip = case.start_fake_zulip()

    configs = [0]

    def config(binary, target=f"ssh://{user}@127.0.0.1:{port}"):
        """Writes a config (0600: it holds secrets) of its own; returns its path."""
        configs[0] += 1
        path = f"{tmp}/config-{configs[0]}.yml"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(config_text(binary, target))
        return path

    def config_text(binary, target):
        return (f"""
buildmaster: {{host: 127.0.0.1, web_port: 0, worker_port: 0}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
zulip:
  user: ci-bot@example.org
  password: "{case.zulip_key}"
  site: "{zulip.url}"
  stream: builds
  ops_stream: ops
slaves:
  local: {{local: true, slaves: 2}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  tests:
    repository: demo
    workers: [local]
    steps:
      - name: test
        run: "sh ./test.sh"
        env: {{RELEASE: "{case.release}", MARKS: "{case.marks}"}}
schedulers:
  force: {{type: force, builders: [tests]}}
deploy:
  target: "{target}"
  runtime: process
  data_dir: {data_dir}
  binary: {binary}
""")

    runs = [0]

    def deploy(*args, expect=None, timeout=120):
        """Runs ci-deploy with the case's key and ssh config; its output goes to
        deploy-N.log (checked for secrets) and is returned with its exit status."""
        runs[0] += 1
        log = f"{tmp}/deploy-{runs[0]}.log"
        command = [DEPLOY, args[0], "--identity", f"{tmp}/key", "--ssh-config",
                   f"{tmp}/ssh_config", *args[1:]]
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        print(f"ci-deploy {args[0]}: {time.monotonic() - started:.1f} s", flush=True)
        output = done.stdout + done.stderr
        with open(log, "w") as out:
            out.write(output)
        if expect is not None:
            case.check(done.returncode == expect,
                       f"ci-deploy {args[0]} exits {expect} ({done.returncode})"
                       + ("" if done.returncode == expect else ":\n" + output))
        return done.returncode, output

    def release_of(binary):
        import hashlib
        return hashlib.sha256(open(binary, "rb").read()).hexdigest()[:16]

    def master_api():
        ports = json.load(open(f"{data_dir}/run/ports.json"))
        master = harness.Master(case, None)
        master.web = ports["web_port"]
        return master

    def pid(name):
        try:
            return int(open(f"{data_dir}/run/{name}.pid").read())
        except (OSError, ValueError):
            return None

    def alive(process_id):
        """True while the process exists and is not a zombie (waiting for init to reap it)."""
        try:
            with open(f"/proc/{process_id}/stat") as stat_file:
                return stat_file.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    try:
        cfg = config(binaries["v1"])
        done = subprocess.run([DEPLOY, "check", cfg], capture_output=True, text=True)
        case.check(done.returncode == 0 and done.stdout == "OK\n",
                   f"check says OK ({done.returncode}: {done.stdout}{done.stderr})")

        status, output = deploy("status", cfg, expect=1)
        case.check("not running" in output, "status before start: not running")

        status, output = deploy("start", cfg, expect=0)
        v1 = release_of(binaries["v1"])
        case.check(f"installing {binaries['v1']} as release {v1}" in output and
                   "healthy after" in output, f"start installs release {v1} and waits for "
                   f"health:\n{output}")
        mode = stat.S_IMODE(os.stat(f"{data_dir}/config.json").st_mode)
        case.check(mode == 0o600, f"the config on the target is mode 0600 ({oct(mode)})")
        on_target = json.load(open(f"{data_dir}/config.json"))
        case.check(on_target["auth"]["password"] == case.auth[1],
                   "the config on the target holds the password (sent on ssh's stdin)")
        supervisor = pid("supervisor")
        case.check(supervisor is not None and alive(supervisor), "the supervisor runs")
        status, output = deploy("start", cfg, expect=1)
        case.check("a master runs already" in output, "a second start is refused")

        status, output = deploy("status", cfg, expect=0)
        case.check(f"release {v1}" in output and "health:   ok" in output and
                   re.search(r"master:   running, pid [0-9]+, up [0-9]+s", output) and
                   "builds:   0 running" in output and "workers:  " in output and
                   "master:   running, pid" in output,
                   f"status shows version, uptime, health, builds, workers:\n{output}")

        # The key from the agent when no --identity is given.
        agent = subprocess.run(["ssh-agent", "-s", "-a", f"{tmp}/agent.sock"],
                               capture_output=True, text=True, check=True).stdout
        agent_pid = int(agent.split("SSH_AGENT_PID=")[1].split(";")[0])
        try:
            agent_env = dict(os.environ, SSH_AUTH_SOCK=f"{tmp}/agent.sock")
            subprocess.run(["ssh-add", "-q", f"{tmp}/key"], env=agent_env, check=True,
                           capture_output=True)
            done = subprocess.run([DEPLOY, "status", "--ssh-config", f"{tmp}/ssh_config", cfg],
                                  capture_output=True, text=True, env=agent_env, timeout=60)
            case.check(done.returncode == 0 and f"release {v1}" in done.stdout,
                       f"status with the agent's key ({done.returncode}: {done.stderr})")
        finally:
            os.kill(agent_pid, signal.SIGTERM)
        # The same master seen through the `local` target (/bin/sh on this machine, no ssh).
        done = subprocess.run([DEPLOY, "status", config(binaries["v1"], "local")],
                              capture_output=True, text=True, timeout=60)
        case.check(done.returncode == 0 and "target local" in done.stdout and
                   f"release {v1}" in done.stdout and "health:   ok (http://127.0.0.1:" in
                   done.stdout, f"status through the local target:\n{done.stdout}{done.stderr}")

        # A build runs: update waits for it, counting down, and leaves the master alone.
        master = master_api()
        tip = case.repo.branch("feature/slow", ["slow"])
        answer = master.post("/api/v1/builders/tests/force",
                             json.dumps({"branch": "feature/slow"}).encode(), auth=case.auth)
        case.check(answer[0] == 202, f"a build is forced ({answer})")
        build = harness.wait_for("the slow build to run", lambda: master.running_build(tip), 30)
        master.wait_step_output(build["id"], "waiting")
        old_master = pid("master")

        # The drain route changes something: authenticated, CSRF-safe like the others.
        refused = [master.post("/api/v1/master/drain")[0],
                   master.post("/api/v1/master/drain", headers={"Origin": "http://evil.example"},
                               auth=case.auth)[0],
                   master.post("/api/v1/master/drain", b"drain",
                               headers={"Content-Type": "text/plain"}, auth=case.auth)[0]]
        case.check(refused == [401, 403, 415], f"drain needs the password, the same site and "
                   f"JSON or no body ({refused})")
        state = master.get("/api/v1/master")
        case.check(state == {"drained": False, "running_builds": 1, "pending_requests": 0},
                   f"GET /api/v1/master: not drained, 1 running build ({state})")

        status, output = deploy("update", cfg, "--timeout", "1", expect=1)
        case.check("refused: 1 build still running after 1s" in output,
                   f"update refuses when a build outlives --timeout:\n{output}")
        case.check("drained: the master starts no new build" in output,
                   f"update drained the master before it waited:\n{output}")
        case.check(pid("master") == old_master and alive(old_master),
                   "the refused update left the master running")
        state = master.get("/api/v1/master")
        case.check(not state["drained"], f"the refused update undrained the master ({state})")

        cfg = config(binaries["v2"])
        v2 = release_of(binaries["v2"])
        runs[0] += 1
        log_path = f"{tmp}/deploy-{runs[0]}.log"
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        with open(log_path, "w") as log:
            updating = subprocess.Popen([DEPLOY, "update", "--identity", f"{tmp}/key",
                                         "--ssh-config", f"{tmp}/ssh_config", "--timeout", "60",
                                         cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
        harness.wait_for("update to wait for the build", lambda: "waiting for 1 running build"
                         in open(log_path).read(), 30)
        # Meanwhile no command line on this machine (ci-deploy, ssh, sshd, the shells it runs,
        # the supervisor, the master) holds a secret of the config.
        leaked = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    argv = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
                except OSError:
                    continue
                leaked += [entry for secret in (case.auth[1], case.zulip_key) if secret in argv]
        case.check(not leaked, f"no process's arguments hold a secret of the config {leaked}")
        # Drained: a build forced now stays queued though a slot is free, so none can start
        # between the wait and the stop.
        state = master.get("/api/v1/master")
        case.check(state["drained"] and state["running_builds"] == 1,
                   f"update drained the master: 1 build running ({state})")
        queued_tip = case.repo.branch("feature/queued", ["queued.txt"])
        answer = master.post("/api/v1/builders/tests/force",
                             json.dumps({"branch": "feature/queued"}).encode(), auth=case.auth)
        case.check(answer[0] == 202, f"a build is forced while drained ({answer})")
        time.sleep(1.5)
        case.check(updating.poll() is None and pid("master") == old_master and
                   alive(old_master), "update waits while the build runs; the master is untouched")
        state = master.get("/api/v1/master")
        case.check(state == {"drained": True, "running_builds": 1, "pending_requests": 1} and
                   not [b for b in master.builds() if b["branch_tip"] == queued_tip],
                   f"the build forced while drained stays queued ({state})")
        case.check(not [m for m in zulip.messages if m["to"] == "ops"],
                   "nothing is announced before the build ends")
        open(case.release, "w").close()
        updating.wait(60)
        output = open(log_path).read()
        case.check(updating.returncode == 0, f"update exits 0 ({updating.returncode}):\n{output}")
        case.check("running builds finished" in output and f"updated: " in output and
                   f"[release {v2}]" in output, "update reports each phase")
        finished = harness.wait_for("the build's end", lambda: next(
            (b for b in master_api().builds() if b["id"] == build["id"] and
             b["result"] != "running"), None), 30)
        case.check(finished["result"] == "success", f"the build it waited for ended success "
                   f"({finished['result']})")
        case.check(pid("master") != old_master and not alive(old_master),
                   "a new master process runs")
        # Drained is not kept across a restart: the new master runs the queued build.
        queued = harness.wait_for("the queued build on the new master",
                                  lambda: master_api().finished_build(queued_tip), 60)
        case.check(queued["result"] == "success" and not master_api().get("/api/v1/master")[
            "drained"], f"the new master is not drained and ran the queued build "
                        f"({queued['result']})")
        # The master's own reporter posts build summaries to `builds`; ci-deploy posts to `ops`.
        announced = lambda: [m for m in zulip.messages if m["to"] == "ops"]  # noqa: E731
        texts = [m["content"] for m in announced()]
        case.check(len(texts) == 2 and texts[0].startswith("Updating the libci master on "
                                                           "127.0.0.1") and
                   f"release {v1}" in texts[0] and f"release {v2}" in texts[0] and
                   "updated and healthy" in texts[1] and
                   all(m["topic"] == "deploy" for m in announced()),
                   f"Zulip got before and after, with the versions: {texts}")
        status, output = deploy("status", cfg, expect=0)
        case.check(f"release {v2}" in output and f"previous: release {v1}" in output,
                   f"status shows the new release and the previous one:\n{output}")

        # A master that never becomes healthy: rolled back.
        broken = config(binaries["broken"])
        status, output = deploy("update", broken, "--health-timeout", "3", expect=2)
        case.check("not healthy after 3s" in output and "this master cannot start" in output and
                   f"rolled back:" in output and "runs again and is healthy" in output,
                   f"update rolls back and says so, with the master's log:\n{output}")
        case.check(os.readlink(f"{data_dir}/current") == f"releases/{v2}",
                   "current points at the previous release again")
        restored = json.load(open(f"{data_dir}/config.json"))
        mode = stat.S_IMODE(os.stat(f"{data_dir}/config.json").st_mode)
        case.check(restored["deploy"]["binary"] == binaries["v2"] and mode == 0o600,
                   f"the config the previous master ran with is back, mode 0600 ({oct(mode)})")
        status, output = deploy("status", cfg, expect=0)
        case.check(f"release {v2}" in output and "health:   ok" in output,
                   f"the previous release runs and is healthy:\n{output}")
        texts = [m["content"] for m in announced()]
        case.check(len(texts) == 4 and "ci-master 9.9 (broken)" in texts[2] and
                   "Rolled back" in texts[3], f"Zulip hears of the rollback: {texts}")

        # The supervisor restarts a master that dies.
        killed = pid("master")
        os.kill(killed, signal.SIGKILL)
        harness.wait_for("a restarted master", lambda: pid("master") not in (None, killed) and
                         os.path.exists(f"{data_dir}/run/ports.json"), 30)
        harness.wait_for("the restarted master to be healthy",
                         lambda: deploy("status", cfg)[0] == 0, 30)
        case.check(True, "the supervisor started the master again after kill -9")
        status, output = deploy("logs", cfg, "--lines", "400", expect=0)
        case.check("libci-supervise: ci-master exited with status 137" in output and
                   "libci-supervise: started" in output and "serving http://" in output,
                   f"logs shows the master's log and the supervisor's notes:\n{output[-2000:]}")
        follow = subprocess.Popen([DEPLOY, "logs", "--follow", "--lines", "1", "--identity",
                                   f"{tmp}/key", "--ssh-config", f"{tmp}/ssh_config", cfg],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env)
        first = follow.stdout.readline()
        with open(f"{data_dir}/log/master.log", "a") as out:
            out.write("a line written while logs --follow runs\n")
        second = follow.stdout.readline()
        follow.terminate()
        follow.wait(10)
        case.check(first != "" and "a line written while logs --follow runs" in second,
                   f"logs --follow prints new lines ({first!r}, {second!r})")
        case.check(follow.returncode == 0, f"logs --follow ends with exit 0 on SIGTERM, having "
                   f"stopped ssh ({follow.returncode})")

        # restart: the same release with the config written again.
        before_restart = pid("master")
        restarted = config(binaries["v2"])
        with open(restarted, "a") as out:
            out.write("failing_builders: [tests]\n")
        status, output = deploy("restart", restarted, expect=0)
        case.check("no build is running" in output and "restarted" in output and
                   pid("master") not in (None, before_restart),
                   f"restart starts a new master process:\n{output}")
        case.check(json.load(open(f"{data_dir}/config.json"))["failing_builders"] == ["tests"] and
                   os.readlink(f"{data_dir}/current") == f"releases/{v2}",
                   "restart wrote the new config and kept the release")

        # Two commands that change the target do not run at once: a held lock refuses the
        # second, naming the holder, and changes nothing.
        case.check(not os.path.exists(f"{data_dir}/run/deploy.lock"),
                   "no command left the deploy lock behind")
        os.mkdir(f"{data_dir}/run/deploy.lock")
        with open(f"{data_dir}/run/deploy.lock/owner", "w") as out:
            out.write("ci-deploy pid 1 on elsewhere since 2026-01-01T00:00:00Z\n")
        locked_master = pid("master")
        status, output = deploy("stop", cfg, expect=1)
        case.check("refused: another ci-deploy is changing this target: ci-deploy pid 1 on "
                   "elsewhere" in output and pid("master") == locked_master and
                   alive(locked_master), f"a held lock refuses stop, which changes nothing:\n"
                   f"{output}")
        shutil.rmtree(f"{data_dir}/run/deploy.lock")

        supervisor = pid("supervisor")
        master_pid = pid("master")
        status, output = deploy("stop", cfg, expect=0)
        case.check(not alive(supervisor) and not alive(master_pid) and pid("supervisor") is None
                   and pid("master") is None, "stop ends the supervisor and the master")
        status, output = deploy("status", cfg, expect=1)
        case.check("not running" in output, "status after stop: not running")
        status, output = deploy("stop", cfg, expect=0)
        case.check("no master runs" in output, "stop when nothing runs is fine")

        # A target that does not answer.
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
        closed.close()
        status, output = deploy("status", config(binaries["v1"],
                                                 f"ssh://{user}@127.0.0.1:{dead_port}"), expect=3)
        case.check("cannot reach ssh://" in output, f"an unreachable target says so: {output}")
        # A key the target does not accept: unreachable too (ssh exits 255).
        run_ = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                               f"{tmp}/stranger"], capture_output=True)
        assert run_.returncode == 0
        done = subprocess.run([DEPLOY, "status", "--identity", f"{tmp}/stranger", "--ssh-config",
                               f"{tmp}/ssh_config", config(binaries["v1"])], capture_output=True,
                              text=True, env=env, timeout=60)
        case.check(done.returncode == 3 and "Permission denied" in done.stderr,
                   f"a refused key: exit 3 with ssh's reason ({done.returncode}: {done.stderr})")
    finally:
        supervisor = pid("supervisor")
        if supervisor and alive(supervisor):
            os.kill(supervisor, signal.SIGKILL)
        master_pid = pid("master")
        if master_pid and alive(master_pid):
            os.kill(master_pid, signal.SIGKILL)


if __name__ == "__main__":
    harness.run(main)
