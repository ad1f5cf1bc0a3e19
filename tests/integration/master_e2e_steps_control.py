#!/usr/bin/env python3
"""Issue 15: a master's local steps stay under its control and away from its secrets. A local
step starts a setsid process that ignores SIGTERM, reads the environ files of its supervisor
and of the master (started with CI_GIT_TOKEN and AWS_SECRET_ACCESS_KEY) into its log, and
prints a config secret in two pieces that reach the master as separate chunks. Its log shows
neither the environment secrets nor the config secret ([redacted] instead); when the master is
killed with -9, the step and its setsid process die with it (PR_SET_PDEATHSIG on the step's
supervisor, which then kills every process of the step)."""

import os
import signal
import time
import uuid

import master_harness as harness

STEP = r'''echo "leader $$" > "$MARKS.leader"
setsid sh -c 'trap "" TERM; echo $$ > "$MARKS.setsid"; exec sleep 300' >/dev/null 2>&1 &
pid=$$
while [ "$pid" -gt 1 ]; do
  pid=$(sed 's/.*) . //' /proc/$pid/stat | cut -d" " -f1)
  case "$(tr "\0" " " < /proc/$pid/cmdline)" in *ci-master*)
    echo "environ of $pid ($(tr "\0" " " < /proc/$pid/cmdline)):"
    tr "\0" "\n" < /proc/$pid/environ || echo unreadable;;
  esac
done
printf 'leaked: %s' "$FIRST"
sleep 0.5
printf '%s :end\n' "$SECOND"
echo waiting
while [ ! -e "$RELEASE" ]; do sleep 0.1; done
'''


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def main(case):
    token = "git-token-" + uuid.uuid4().hex
    password = "env-password-" + uuid.uuid4().hex
    case.secrets += [token, password]
    # The step prints the webhook secret (a config secret) in two pieces, half a second apart.
    secret = case.webhook_secret
    half = len(secret) // 2
    config = case.standard_config(workers="local").replace(
        'env: {RELEASE:',
        f'env: {{FIRST: "{secret[:half]}", SECOND: "{secret[half:]}", RELEASE:')
    env = dict(os.environ, CI_GIT_TOKEN=token, AWS_SECRET_ACCESS_KEY=password)
    master = case.start_master(case.write_config(config), env=env)
    case.repo.write("test.sh", STEP)
    harness.git("checkout", "-q", "-b", "feature/escape", cwd=case.repo.work)
    harness.git("commit", "-qam", "a step that escapes", cwd=case.repo.work)
    tip = harness.git("rev-parse", "HEAD", cwd=case.repo.work)
    harness.git("push", "-q", "origin", "feature/escape", cwd=case.repo.work)
    master.push("feature/escape", harness.ZERO, tip, "escape")
    build = harness.wait_for("the build to run", lambda: master.running_build(tip), 60)
    master.wait_step_output(build["id"], "waiting")
    log = master.step_log(build["id"])
    case.check(log.count("environ of") == 2,
               "the step read its supervisor's and the master's environ files")
    case.check(token not in log and password not in log,
               "no environment secret of the master reached the step's log")
    case.check(secret not in log and secret[half:] not in log and "[redacted] :end" in log,
               "the config secret printed in two chunks is [redacted] in the log")
    if case.failures:
        print("the step's log, secrets masked:")
        for line in log.splitlines():
            for value in (token, password, secret, secret[half:]):
                line = line.replace(value, "<" + "SECRET>")
            if "SECRET" in line or "leaked" in line or "TOKEN" in line or "PASSWORD" in line:
                print("  " + line)

    leader = int(open(case.marks + ".leader").read().split()[1])
    escaped = int(open(case.marks + ".setsid").read())
    case.check(alive(leader) and alive(escaped), "the step and its setsid process run")
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (alive(leader) or alive(escaped)):
        time.sleep(0.05)
    case.check(not alive(leader), "the step died with the master")
    case.check(not alive(escaped), "the step's setsid process, which ignores SIGTERM, died too")
    case.check_no_secrets_in_logs()


if __name__ == "__main__":
    harness.run(main)
