#!/usr/bin/env python3
"""Issue 15: `slaves.<class>.step_user` runs a master's local steps as another user, and each
local step runs in a cgroup v2 of its own (`ci-master start --cgroup`, default auto) where the
master can create one. As root only (the master must be root to change users): elsewhere the
case SKIPs (exit 77) saying why; where no cgroup v2 is writable, the cgroup check is skipped with
a note and the user check still runs."""

import os
import sys

import master_harness as harness

STEP = r'''echo "uid=$(id -u) user=$(id -un)"
echo "cgroup=$(grep '^0::' /proc/self/cgroup)"
echo "home=$HOME"
'''


def main(case):
    config = case.standard_config(workers="local").replace(
        "  local: {local: true}\n", "  local: {local: true, step_user: nobody}\n")
    # The step user must reach its work directory: the case's directory is mkdtemp's 0700.
    os.chmod(case.tmp, 0o755)
    master = case.start_master(case.write_config(config))
    case.repo.write("test.sh", STEP)
    harness.git("checkout", "-q", "-b", "feature/user", cwd=case.repo.work)
    harness.git("commit", "-qam", "who runs the step", cwd=case.repo.work)
    tip = harness.git("rev-parse", "HEAD", cwd=case.repo.work)
    harness.git("push", "-q", "origin", "feature/user", cwd=case.repo.work)
    master.push("feature/user", harness.ZERO, tip, "user")
    build = harness.wait_for("the build to finish", lambda: master.finished_build(tip), 60)
    log = master.step_log(build["id"])
    case.check(build["result"] == "success", f"the build succeeded ({build['result']})")
    case.check("uid=65534 user=nobody" in log, "the local step ran as nobody (step_user)")
    master_log = "".join(case.logs().values())
    if "steps run in cgroups of their own" in master_log:
        case.check("/libci-step-" in log, "the local step ran in a cgroup of its own")
    else:
        print("note: no cgroup v2 for steps here; the master's log says why:", flush=True)
        for line in master_log.splitlines():
            if "no cgroup for build steps" in line:
                print("  " + line)
        case.check("no cgroup for build steps" in master_log,
                   "the master said once why steps have no cgroup")
    if case.failures:
        print("the step's log:\n" + log)


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("SKIP: step_user needs a master running as root", flush=True)
        sys.exit(77)
    harness.run(main)
