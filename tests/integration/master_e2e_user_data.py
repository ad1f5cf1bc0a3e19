#!/usr/bin/env python3
"""User data for EC2 latent workers (issue 18), without EC2: check-config finds an unknown
placeholder in a template (file:line:column); `ci-master render-user-data` prints the default
template filled in, the token masked, as YAML (PyYAML, not libci's yaml-cpp) whose worker.env
holds the master's address and the fingerprint Python computes; its systemd units pass
`systemd-analyze verify`; a ci-worker started as the unit would (no flag but --work-dir, its
master, name, token and fingerprint in the environment only) logs in and builds; the watchdog
script powers off only after the master was unreachable for unreachable_timeout."""

import os
import shutil
import socket
import subprocess
import time

import yaml

import master_harness as harness


def render(config, data_dir, worker_class="latent"):
    return subprocess.run([harness.MASTER, "render-user-data", "--config", config,
                           "--class", worker_class, "--data-dir", data_dir],
                          capture_output=True, text=True, timeout=60)


def files_of(user_data):
    return {f["path"]: f for f in yaml.safe_load(user_data)["write_files"]}


def env_of(text):
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def main(case):
    config_text = case.standard_config(workers="latent").replace(
        "latent: {ami: ci-image, slaves: 2}",
        "latent: {ami: ci-image, slaves: 2, unreachable_timeout: 60s}")
    check_bad_template(case, config_text)
    master = case.start_master(case.write_config(config_text))
    data_dir = master.data_dir()
    port = master.worker_port
    rendered_config = os.path.join(case.tmp, "render.yml")
    with open(rendered_config, "w") as out:
        out.write(config_text.replace("worker_port: 0", f"worker_port: {port}, host: 127.0.0.1"))

    shown = render(rendered_config, data_dir)
    case.check(shown.returncode == 0, f"render-user-data exits 0 ({shown.returncode}: "
               f"{shown.stderr.strip()})")
    user_data = shown.stdout
    case.check(user_data.startswith("#cloud-config\n"), "it prints #cloud-config")
    written = files_of(user_data)
    env_file = written["/etc/libci/worker.env"]
    case.check(env_file["permissions"] == "0600", "worker.env is written with mode 0600")
    env = env_of(env_file["content"])
    case.check(env == {"CI_MASTER": f"127.0.0.1:{port}",
                       "CI_WORKER_NAME": "latent/[instance id]",
                       "CI_WORKER_SECRET": "[one-time token]",
                       "CI_MASTER_FINGERPRINT": master.fingerprint()},
               f"worker.env: the master, the masked name and token, the fingerprint ({env})")
    for args, code, what in (
            (["--class", "remote"], 1, "a static class"),
            (["--class", "nope"], 1, "an unknown class"),
            ([], 2, "no --class"),
            (["--help"], 0, "--help")):
        got = subprocess.run([harness.MASTER, "render-user-data", "--config", rendered_config,
                              "--data-dir", data_dir, *args], capture_output=True, text=True,
                             timeout=60)
        case.check(got.returncode == code, f"render-user-data with {what}: exit {code} "
                   f"({got.returncode})")

    verify_units(case, written)
    boot_worker(case, master, env)
    check_watchdog(case, written, config_text, data_dir)


def check_bad_template(case, config_text):
    templates = os.path.join(case.tmp, "templates")
    os.makedirs(templates)
    with open(os.path.join(templates, "bad.cloud-config"), "w") as out:
        out.write("#cloud-config\nwrite_files:\n  - {path: /x, content: '{{worker_tokn}}'}\n")
    bad = os.path.join(case.tmp, "bad.yml")
    with open(bad, "w") as out:
        out.write(config_text.replace(
            "unreachable_timeout: 60s}",
            "unreachable_timeout: 60s, user_data_template: templates/bad.cloud-config}"))
    checked = subprocess.run([harness.MASTER, "check-config", bad], capture_output=True,
                             text=True, timeout=60)
    expected = (f"{templates}/bad.cloud-config:3:26: unknown placeholder {{{{worker_tokn}}}}")
    case.check(checked.returncode == 1 and expected in checked.stderr and
               "(slaves.latent.user_data_template)" in checked.stderr,
               f"check-config names the template's line and column ({checked.returncode}: "
               f"{checked.stderr.strip()[-300:]})")
    with open(os.path.join(templates, "bad.cloud-config"), "w") as out:
        out.write("#cloud-config\n# {{ worker_token }} {{class}}\n")
    fixed = subprocess.run([harness.MASTER, "check-config", bad], capture_output=True,
                           text=True, timeout=60)
    case.check(fixed.returncode == 0, f"fixed, the template passes ({fixed.stderr.strip()})")


def verify_units(case, written):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        print("SKIP (loud): systemd-analyze is not installed; the units were not verified",
              flush=True)
        return
    # A root holding the units, stand-ins for the programs they run, and the system's own units
    # (sysinit.target...): verify then checks our units as a booted instance would read them.
    root = os.path.join(case.tmp, "root")
    for path, entry in written.items():
        target = root + path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as out:
            out.write(entry["content"])
        os.chmod(target, int(entry.get("permissions", "0644"), 8))
    os.makedirs(root + "/usr/local/bin", exist_ok=True)
    shutil.copy(harness.WORKER, root + "/usr/local/bin/ci-worker")
    os.makedirs(root + "/usr/lib/systemd", exist_ok=True)
    os.symlink("/lib/systemd/system", root + "/usr/lib/systemd/system")
    units = [p for p in written if p.startswith("/etc/systemd/system/")]
    got = subprocess.run([analyze, "verify", "--man=no", f"--root={root}", *units],
                         capture_output=True, text=True, timeout=120)
    case.check(got.returncode == 0 and not got.stdout.strip() and not got.stderr.strip(),
               f"systemd-analyze verify accepts {len(units)} units without a word "
               f"({got.returncode}: {(got.stdout + got.stderr).strip()[-400:]})")


def boot_worker(case, master, env):
    status, issued = master.post("/api/v1/workers/tokens", b'{"class": "latent"}',
                                 auth=case.auth)
    if not case.check(status == 201, f"a one-time token ({status})"):
        return
    case.secrets.append(issued["token"])
    # What the unit's EnvironmentFile gives: the rendered values, with this instance's name and
    # token where render-user-data masks them. Nothing but --work-dir on the command line.
    env = dict(env, CI_WORKER_NAME=issued["name"], CI_WORKER_SECRET=issued["token"],
               PATH=os.environ["PATH"])
    log_path = os.path.join(case.tmp, "booted-worker.log")
    with open(log_path, "w") as log:
        worker = subprocess.Popen([harness.WORKER, "start", "--work-dir",
                                   os.path.join(case.tmp, "booted")], cwd=case.tmp, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        harness.wait_for("the worker started from the environment to log in",
                         lambda: master.connected(issued["name"]), 30)
        with open(f"/proc/{worker.pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read().decode()
        case.check(issued["token"] not in argv and "127.0.0.1" not in argv,
                   "neither the token nor the master is in its argv")
        tip = case.repo.branch("feature/booted", ["booted.txt"])
        master.push("feature/booted", harness.ZERO, tip)
        done = harness.wait_for("its build", lambda: master.finished_build(tip), 60)
        case.check(done["result"] == "success" and done["worker"] == issued["name"],
                   f"it builds ({done['worker']}: {done['result']})")
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(timeout=30)
    unset = subprocess.run([harness.WORKER, "start"], capture_output=True, text=True,
                           timeout=30, env={"PATH": os.environ["PATH"]})
    case.check(unset.returncode == 2 and "CI_MASTER" in unset.stderr,
               f"without --master or $CI_MASTER: exit 2 naming the variable ({unset.returncode}: "
               f"{unset.stderr.strip()})")


def check_watchdog(case, written, config_text, data_dir):
    state = os.path.join(case.tmp, "watchdog")
    bin_dir = os.path.join(case.tmp, "fakebin")
    os.makedirs(bin_dir)
    powered_off = os.path.join(case.tmp, "powered-off")
    for name, body in (("systemctl", f'echo "$@" >> "{powered_off}"\n'), ("logger", "true\n")):
        path = os.path.join(bin_dir, name)
        with open(path, "w") as out:
            out.write("#!/bin/sh\n" + body)
        os.chmod(path, 0o755)
    env = dict(os.environ, LIBCI_WATCHDOG_STATE=state, PATH=bin_dir + ":" + os.environ["PATH"])

    def run(script, seen_ago=None):
        stamp = os.path.join(state, "master-seen")
        if seen_ago is not None:
            os.makedirs(state, exist_ok=True)
            open(stamp, "a").close()
            past = time.time() - seen_ago
            os.utime(stamp, (past, past))
        subprocess.run(["bash", "-c", script], env=env, timeout=60, check=True)
        return time.time() - os.stat(stamp).st_mtime

    def powered():
        return os.path.exists(powered_off) and open(powered_off).read()

    script = written["/usr/local/lib/libci/master-watchdog"]["content"]
    age = run(script, seen_ago=3600)
    case.check(age < 30 and not powered(), "master reachable: the watchdog notes it, even an hour "
               "after the last time")
    # The same template for a master whose worker port refuses connections.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    dead_config = os.path.join(case.tmp, "dead.yml")
    with open(dead_config, "w") as out:
        out.write(config_text.replace("worker_port: 0", f"worker_port: {dead_port}, "
                                      "host: 127.0.0.1"))
    dead = render(dead_config, data_dir)
    dead_script = files_of(dead.stdout)["/usr/local/lib/libci/master-watchdog"]["content"]
    run(dead_script, seen_ago=30)
    case.check(not powered(), "unreachable for 30 s of 60: no power-off")
    run(dead_script, seen_ago=65)
    case.check(powered() == "poweroff\n", f"unreachable for 65 s of 60: power-off "
               f"({powered()!r})")


if __name__ == "__main__":
    harness.run(main)
