#!/usr/bin/env python3
"""Issue 15: the master redacts its config's secrets from a REMOTE worker's build log and log
files. A remote ci-worker knows only its own secret and git token; its step prints the
config's webhook secret (handed to it as two plain environment values) in two writes half a
second apart, so the halves reach the master in separate chunks, and writes it the same way
into a log file (`logfiles`). GET of the step's log and of the log file shows [redacted],
never the secret or its second half."""

import uuid

import master_harness as harness

STEP = r'''printf 'leaked: %s' "$FIRST"
printf 'file: %s' "$FIRST" > out.log
sleep 1.2
printf '%s :end\n' "$SECOND"
printf '%s :end\n' "$SECOND" >> out.log
sleep 1.2
echo done
'''


def main(case):
    secret = case.webhook_secret
    half = len(secret) // 2
    config = case.standard_config(workers="remote").replace(
        'env: {RELEASE:',
        f'logfiles: {{out.log: out.log}}\n'
        f'        env: {{FIRST: "{secret[:half]}", SECOND: "{secret[half:]}", RELEASE:')
    master = case.start_master(case.write_config(config))
    case.start_worker(master, 0)
    harness.wait_for("the remote worker", lambda: master.connected("remote/0"), 30)
    case.repo.write("test.sh", STEP)
    branch = "feature/redact-" + uuid.uuid4().hex[:8]
    harness.git("checkout", "-q", "-b", branch, cwd=case.repo.work)
    harness.git("commit", "-qam", "a step that prints a config secret", cwd=case.repo.work)
    tip = harness.git("rev-parse", "HEAD", cwd=case.repo.work)
    harness.git("push", "-q", "origin", branch, cwd=case.repo.work)
    master.push(branch, harness.ZERO, tip, "redact")
    build = harness.wait_for("the build to finish", lambda: master.finished_build(tip), 90)
    case.check(build["result"] == "success", f"the build succeeded ({build['result']})")
    case.check(build.get("worker", "remote/0").startswith("remote/"),
               f"it ran on a remote worker ({build.get('worker')})")
    log = master.step_log(build["id"])
    case.check("leaked: [redacted] :end" in log,
               "the step's log shows [redacted] for the secret printed in two chunks")
    case.check(secret not in log and secret[half:] not in log,
               "neither the secret nor its second half is in the stored log")
    logfile = master.get(f"/api/v1/builds/{build['id']}/steps/1/logs/out.log")
    case.check(logfile == "file: [redacted] :end\n",
               f"the log file shows [redacted] ({logfile.replace(secret, '<SECRET>')!r})")
    case.check("done" in log, "the log goes on after the secret")


if __name__ == "__main__":
    harness.run(main)
