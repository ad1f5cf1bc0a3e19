#!/usr/bin/env python3
"""`idle_action: stop` against moto_server (EC2 with SigV4 checked; spoken to here through
boto3, not libci). An on-demand class with stopped_max 1: two builds at once launch two
instances, booted from their user data as master-e2e-ec2 does (a real `ci-worker start` with
only worker.env and the unit's flags); idle for build_wait_timeout, one is stopped (EC2 lists it
`stopped`, /metrics counts it) and the other terminated (beyond stopped_max). The next build
request starts the stopped instance (StartInstances, no RunInstances): its worker boots again
from the same disk, logs in with the secret it kept (--secret-state: its one-time token was
spent at its first login) and runs the build. Idle again, stopped again; the master is killed
with -9 while it is stopped, and a tagged instance it never knew is stopped too: restarted, the
master keeps its own (its worker's key is in the store) and terminates the stranger; the next
request starts the kept one again, whose worker logs in and builds, and nothing is launched. A
boot with the stale token alone (no kept secret) is refused. A graceful stop terminates every
instance, the stopped ones too. SKIPs (exit 77) loudly when moto_server is missing."""

import html
import os
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.request

import master_harness as harness
from master_e2e_ec2 import HOST, Booted, boot, build_of, force, make_image, metric, tags_of
from master_e2e_ec2 import with_moto


def config(case, moto, worker_port):
    return f"""
buildmaster: {{host: {HOST}, web_port: 0, worker_port: {worker_port},
              state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
aws:
  identifier: {moto.key_id}
  secret_identifier: "{moto.secret}"
  region: us-east-1
  endpoint_url: "{moto.endpoint}"
slaves:
  aws:
    ami: ci-base
    slaves: 3
    instance_type: c5.large
    build_wait_timeout: 4
    missing_timeout: 30
    idle_action: stop
    stopped_max: 1
builders:
  on-ec2:
    workers: [aws]
    steps:
      - name: hello
        run: "echo built on $(hostname)"
schedulers:
  force: {{type: force, builders: [on-ec2]}}
"""


def states(moto):
    return {i: x["State"]["Name"] for i, x in moto.tagged(
        ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")).items()}


def run_instances_calls(moto):
    """Every instance ever tagged for this master (moto keeps terminated ones)."""
    return set(states(moto))


def main(case):
    with_moto(case, run, "idle_action stop")


def run(case, moto):
    make_image(moto, "ci-base-1", {"base_name": "ci-base", "production": "true",
                                   "timestamp": "20261101"})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        worker_port = probe.getsockname()[1]
    path = case.write_config(config(case, moto, worker_port))
    check = subprocess.run([harness.MASTER, "check-config", path], capture_output=True,
                           text=True)
    case.check(check.returncode == 0 and "not used yet" not in check.stdout + check.stderr,
               f"check-config accepts idle_action stop and says nothing is unused: "
               f"{check.returncode} {check.stdout} {check.stderr}")
    master = case.start_master(path, args=["--ec2-reconcile", "2"])

    # 1. Two builds at once: two instances, both booted, both build.
    requests = [force(case, master), force(case, master)]
    launched = harness.wait_for("two instances", lambda: (
        moto.tagged(("pending", "running")) if len(moto.tagged(("pending", "running"))) == 2
        else None), 30)
    workers = {}
    for index, (instance_id, instance) in enumerate(sorted(launched.items()), start=1):
        case.check(instance.get("InstanceLifecycle") is None, f"{instance_id} is on-demand")
        workers[instance_id] = (index, boot(case, moto, master, instance_id, index,
                                            tags_of(instance)))
    for request in requests:
        build = harness.wait_for("a build on an EC2 worker", lambda r=request: build_of(master, r),
                                 60)
        case.check(build["result"] == "success", f"build {build['id']}: {build['result']}")

    # 2. Idle for build_wait_timeout (4 s): one stopped (stopped_max 1), the other terminated.
    def settled():
        now = states(moto)
        mine = {i: now.get(i) for i in launched}
        done = sorted(mine.values()) in (["shutting-down", "stopped"], ["stopped", "terminated"])
        return mine if done else None
    ended = harness.wait_for("one idle instance stopped, the other terminated", settled, 40)
    kept = next(i for i, s in ended.items() if s == "stopped")
    gone = next(i for i, s in ended.items() if s != "stopped")
    case.check(True, f"idle: {kept} stopped, {gone} terminated (stopped_max 1)")
    # Their machines are off: their workers' processes end.
    for index, worker in workers.values():
        worker.kill()
    kept_index, kept_worker = workers[kept]
    kept_name = kept_worker.name
    mode = stat.S_IMODE(os.stat(kept_worker.secret_state).st_mode)
    case.check(mode == 0o600, f"the worker kept its rotated secret with mode 0600 ({oct(mode)})")
    token = kept_worker.env["CI_WORKER_SECRET"]
    kept_secret = open(kept_worker.secret_state).read().splitlines()
    case.check(kept_secret[0] == kept_name and kept_secret[1] != token,
               "the kept secret is the rotated one, not the spent token")
    case.secrets.append(kept_secret[1])
    harness.wait_for("ci_ec2_instances to count the stopped instance", lambda: metric(
        master, "ci_ec2_instances", {"class": "aws", "market": "on-demand",
                                     "state": "stopped"}) == 1, 20)
    case.check(True, "ci_ec2_instances{state=stopped} counts it")
    shown = {w["name"]: w.get("instance", {}) for w in master.get("/api/v1/workers")["workers"]}
    case.check(shown.get(kept_name, {}).get("state") == "stopped",
               f"the workers API shows the stopped instance: {shown.get(kept_name)}")
    # Its worker is not `lost`: the pool stopped it (the API and the workers page say so).
    listed = {w["name"]: w for w in master.get("/api/v1/workers")["workers"]}
    case.check(listed.get(kept_name, {}).get("state") == "stopped"
               and listed[kept_name]["connected"] is False,
               f"the workers API shows the stopped instance's worker stopped: "
               f"{listed.get(kept_name)}")
    page = urllib.request.urlopen(master.url("/workers"), timeout=30).read().decode()
    row = re.search(r"<td>(?:<bdi>)?" + re.escape(html.escape(kept_name)) + r"(?:</bdi>)?</td>\s*<td>[^<]*</td>\s*"
                    r"<td>(.*?)</td>", page)
    case.check(row is not None and '<span class="result none">stopped</span>' in row.group(1),
               f"the workers page shows its worker stopped ({row.group(1) if row else page[:300]})")

    # 3. A new request starts the stopped instance: no new instance, the same worker builds.
    before = run_instances_calls(moto)
    third = force(case, master)
    harness.wait_for("the stopped instance to be started",
                     lambda: moto.state(kept) in ("pending", "running"), 30)
    case.check(run_instances_calls(moto) == before, "started, not launched")
    rebooted = Booted(case, moto, kept, kept_index)
    build = harness.wait_for("the build on the started instance", lambda: build_of(master, third),
                             60)
    case.check(build["result"] == "success" and build["worker"] == kept_name,
               f"the started instance's worker logged in again and built: {build['worker']} "
               f"{build['result']}")
    case.check("logging in with the secret kept in" in rebooted.log(),
               "its worker used the kept secret")

    # 4. Idle again: stopped again. kill -9 while it is stopped, and a stranger tagged for
    # this master stopped beside it: restarted, the master keeps its own, ends the stranger.
    harness.wait_for("the started instance stopped again", lambda: moto.state(kept) == "stopped",
                     40)
    rebooted.kill()
    master.kill(signal.SIGKILL)
    base = moto.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stranger = moto.ec2.run_instances(
        ImageId=base, MinCount=1, MaxCount=1, InstanceType="t2.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [
            {"Key": "ci:master", "Value": HOST}, {"Key": "ci:class", "Value": "aws"},
            {"Key": "ci:worker", "Value": "aws/stranger"}]}])["Instances"][0]["InstanceId"]
    moto.ec2.stop_instances(InstanceIds=[stranger])
    master.start()
    harness.wait_for("the unknown stopped instance to be terminated",
                     lambda: moto.state(stranger) in ("shutting-down", "terminated"), 30)
    case.check(True, "the unknown stopped instance tagged for this master was terminated")
    time.sleep(3)  # a reconcile more
    case.check(moto.state(kept) == "stopped",
               f"the master's own stopped instance is kept: {moto.state(kept)}")
    before = run_instances_calls(moto)
    fourth = force(case, master)
    harness.wait_for("the kept instance to be started after the restart",
                     lambda: moto.state(kept) in ("pending", "running"), 30)
    # A boot with the spent token alone (its disk lost) is refused: only the kept secret works.
    stale = Booted(case, moto, kept, 99)
    status = stale.process.wait(timeout=30)
    case.check(status == 1, f"a boot with the spent token alone is refused (exit {status})")
    # ... and the kept secret alone is enough: this boot has no CI_WORKER_SECRET at all.
    again = Booted(case, moto, kept, kept_index, drop=("CI_WORKER_SECRET",))
    build = harness.wait_for("the build on the kept instance", lambda: build_of(master, fourth), 60)
    case.check(build["result"] == "success" and build["worker"] == kept_name,
               f"after the restart, the kept instance's worker logged in and built: "
               f"{build['worker']} {build['result']}")
    case.check(run_instances_calls(moto) == before, "nothing was launched after the restart")

    # 5. A graceful stop terminates everything, stopped instances too.
    harness.wait_for("the instance stopped once more", lambda: moto.state(kept) == "stopped", 40)
    again.kill()
    master.kill(signal.SIGTERM)
    left = {i: s for i, s in states(moto).items() if s not in ("shutting-down", "terminated")}
    case.check(not left, f"no tagged instance left after the master stopped: {left}")
    log = "".join(case.logs().values())
    case.check("ec2: stopping " in log and "ec2: starting " in log,
               "the master logged its stops and starts")
    case.check("tagged instance(s) this master does not know" in log,
               "the unknown instance was logged as an operational error")


if __name__ == "__main__":
    harness.run(main)
