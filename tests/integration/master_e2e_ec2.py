#!/usr/bin/env python3
"""The master's EC2 pool against moto_server (EC2 with SigV4 checked; spoken to here through
boto3, not libci): a build request waiting for an EC2 class launches one spot instance with the
newest production image, the class's type, key, security group, subnet and tags, and
InstanceInitiatedShutdownBehavior=terminate; the test plays its boot from the instance's user
data as EC2 keeps it (the worker.env its cloud-config writes: the master, the worker's name and
one-time token, the master's fingerprint, and no other secret) by starting a real
`ci-worker start` with that environment only; the build runs there; idle for build_wait_timeout, the
instance is terminated. Then the master is killed with -9 right after a launch: restarted, it
adopts that instance (its worker's key is in the store) but, as its worker never boots,
terminates it once its missing_timeout has run, terminates a tagged instance it never knew, and
launches a fresh one for the request still waiting. Killed with -9 again while that instance's
worker is connected, the restarted master adopts it: its worker logs in again and runs the next
build, and nothing else is launched. A graceful stop leaves no tagged instance running. SKIPs (exit 77) loudly when moto_server is missing."""

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import yaml

import master_harness as harness

# The instances' workers dial buildmaster.host (their user data says so): here, this machine.
HOST = "127.0.0.1"
REGION = "us-east-1"


def moto_program():
    return os.environ.get("LIBCI_MOTO_SERVER") or shutil.which("moto_server")


class Moto:
    """moto_server on port 0, with authentication switched on after three IAM calls that mint
    the key pair the master and this test use."""

    def __init__(self, case):
        import boto3  # noqa: PLC0415 - only where moto is
        self.boto3 = boto3
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        self.log_path = os.path.join(case.tmp, "moto.log")
        log = open(self.log_path, "w")
        self.process = subprocess.Popen([moto_program(), "-H", "127.0.0.1", "-p", "0"],
                                        stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        log.close()
        self.endpoint = harness.wait_for("moto_server to listen", self.listening, 60)
        iam = self.client("iam", "AKIAUNAUTHENTICATED", "unauthenticated")
        iam.create_user(UserName="libci")
        key = iam.create_access_key(UserName="libci")["AccessKey"]
        iam.put_user_policy(UserName="libci", PolicyName="all", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", '
            '"Resource": "*"}]}'))
        self.key_id, self.secret = key["AccessKeyId"], key["SecretAccessKey"]
        case.secrets.append(self.secret)
        self.ec2 = self.client("ec2", self.key_id, self.secret)

    def listening(self):
        found = re.search(r"Running on (http://127\.0\.0\.1:\d+)", open(self.log_path).read())
        return found.group(1) if found else None

    def client(self, service, key_id, secret):
        return self.boto3.client(service, endpoint_url=self.endpoint, region_name=REGION,
                                 aws_access_key_id=key_id, aws_secret_access_key=secret)

    def tagged(self, states=("pending", "running", "stopping", "stopped", "shutting-down")):
        """The instances tagged ci:master=HOST in `states`, by id."""
        found = {}
        pages = self.ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "tag:ci:master", "Values": [HOST]},
            {"Name": "instance-state-name", "Values": list(states)}])
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    found[instance["InstanceId"]] = instance
        return found

    def state(self, instance_id):
        answer = self.ec2.describe_instances(InstanceIds=[instance_id])
        return answer["Reservations"][0]["Instances"][0]["State"]["Name"]

    def stop(self):
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)


def make_image(moto, name, tags):
    """An image owned by the account (CreateImage of a throw-away instance), with `tags`."""
    base = moto.ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    helper = moto.ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1,
                                    InstanceType="t2.micro")["Instances"][0]["InstanceId"]
    image = moto.ec2.create_image(InstanceId=helper, Name=name)["ImageId"]
    moto.ec2.create_tags(Resources=[image],
                         Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    moto.ec2.terminate_instances(InstanceIds=[helper])
    return image


def tags_of(instance):
    return {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}


def user_data_of(moto, instance_id):
    """The instance's user data as EC2 keeps it (DescribeInstanceAttribute userData), decoded."""
    answer = moto.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    encoded = answer.get("UserData", {}).get("Value")
    return base64.b64decode(encoded).decode() if encoded else ""


class Booted(harness.Worker):
    """The boot of an instance, played from its user data alone: the worker.env its
    cloud-config writes, and the ci-worker unit's ExecStart (its --work-dir and --secret-state
    moved into the test's temp dir, its --imds dropped: there is no metadata service here). The process gets that
    environment and PATH and HOME, nothing else: no name, token or fingerprint on its command
    line or from the test. A harness.Worker for the rest (kill, log)."""

    def __init__(self, case, moto, instance_id, index, drop=()):  # noqa: PLW0231 - own process
        self.user_data = user_data_of(moto, instance_id)
        files = {f["path"]: f for f in yaml.safe_load(self.user_data)["write_files"]}
        env_file = files["/etc/libci/worker.env"]
        if env_file.get("permissions") != "0600":
            raise AssertionError(f"worker.env is not written 0600: {env_file.get('permissions')}")
        self.env = dict(line.split("=", 1) for line in env_file["content"].splitlines()
                        if "=" in line)
        unit = files["/etc/systemd/system/ci-worker.service"]["content"]
        exec_start = next(line.split("=", 1)[1] for line in unit.splitlines()
                          if line.startswith("ExecStart="))
        words = exec_start.split()
        if words[:2] != ["/usr/local/bin/ci-worker", "start"]:
            raise AssertionError(f"the unit does not run ci-worker start: {exec_start}")
        args, rest = [], words[2:]
        while rest:
            flag, value, rest = rest[0], rest[1], rest[2:]
            if flag == "--work-dir":
                value = os.path.join(case.tmp, f"instance{index}")
            if flag == "--secret-state":
                # The instance's disk: a boot of the same index (a stopped instance started
                # again) finds the secret its worker kept.
                value = os.path.join(case.tmp, f"instance{index}-state", "worker-secret")
                self.secret_state = value
            if flag != "--imds":
                args += [flag, value]
        self.name = self.env.get("CI_WORKER_NAME", "")
        # `drop`: worker.env's variables this boot goes without (a disk whose worker.env lost
        # the spent token: the kept secret alone must do).
        environment = {"PATH": os.environ["PATH"], "HOME": case.tmp,
                       **{k: v for k, v in self.env.items() if k not in drop}}
        self.log_path = os.path.join(case.tmp, f"instance{index}.log")
        log = open(self.log_path, "a")
        self.process = subprocess.Popen([harness.WORKER, "start", *args], cwd=case.tmp,
                                        env=environment, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        case.workers.append(self)


def boot(case, moto, master, instance_id, index, tags):
    """Boots instance_id's worker from its user data and checks what that user data holds: the
    master as the worker dials it, the tagged worker name, a one-time token, the master's
    fingerprint, and no other secret of the master's."""
    booted = Booted(case, moto, instance_id, index)
    env = booted.env
    token = env.get("CI_WORKER_SECRET", "")
    case.secrets.append(token)
    case.check(set(env) == {"CI_MASTER", "CI_WORKER_NAME", "CI_WORKER_SECRET",
                            "CI_MASTER_FINGERPRINT"}, f"worker.env's variables: {sorted(env)}")
    case.check(env.get("CI_MASTER") == f"{HOST}:{master.worker_port}",
               f"CI_MASTER is the worker port as bound: {env.get('CI_MASTER')}")
    case.check(env.get("CI_WORKER_NAME") == tags.get("ci:worker"),
               f"CI_WORKER_NAME is the tagged worker: {env.get('CI_WORKER_NAME')}")
    case.check(re.fullmatch(r"[0-9a-f]{64}", token) is not None,
               "CI_WORKER_SECRET is a one-time token (64 hex digits)")
    case.check(env.get("CI_MASTER_FINGERPRINT") == master.fingerprint(),
               "CI_MASTER_FINGERPRINT pins the master's certificate")
    others = [i for i, secret in enumerate(case.secrets[:-1]) if secret in booted.user_data]
    case.check(not others, f"the user data holds no other secret of the master's ({others})")
    case.check(token not in master.get("/api/v1/workers").__repr__(),
               "the workers API does not show the token")
    return booted


def metric(master, name, labels):
    text = master.get("/metrics")
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def config(case, moto, image_setup):
    return f"""
buildmaster: {{host: {HOST}, web_port: 0, worker_port: {image_setup["worker_port"]},
              state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
aws:
  identifier: {moto.key_id}
  secret_identifier: "{moto.secret}"
  region: {REGION}
  endpoint_url: "{moto.endpoint}"
slaves:
  aws:
    ami: ci-base
    slaves: 2
    instance_type: c5.large
    max_spot_price: 0.25
    key_name: ci-key
    security_groups: [{image_setup["group"]}]
    subnet_id: {image_setup["subnet"]}
    tags: {{team: ci}}
    build_wait_timeout: 8
    missing_timeout: 15
builders:
  on-ec2:
    workers: [aws]
    steps:
      - name: hello
        run: "echo built on $(hostname)"
schedulers:
  force: {{type: force, builders: [on-ec2]}}
"""


def force(case, master):
    status, answer = master.post("/api/v1/builders/on-ec2/force", b"{}", auth=case.auth)
    if status != 202:
        raise AssertionError(f"force: {status} {answer}")
    return answer["requests"][0]


def build_of(master, request):
    for build in master.builds():
        # The API says "running" until the build ends.
        if build.get("request") == request and build.get("result") not in (None, "", "running"):
            return build
    return None


def with_moto(case, run_case, untested):
    """Runs `run_case(case, moto)` against a fresh moto_server; SKIPs (exit 77) loudly, saying
    what is `untested`, when there is none."""
    if not moto_program():
        print("SKIP: moto_server not found (LIBCI_MOTO_SERVER unset, not in PATH; "
              f"scripts/test.sh tries pip install 'moto[server]'): {untested} is not tested",
              flush=True)
        sys.exit(77)
    moto = Moto(case)
    try:
        run_case(case, moto)
    finally:
        moto.stop()


def main(case):
    with_moto(case, run, "the EC2 pool")


def run(case, moto):
    ec2 = moto.ec2
    # Images named ci-base: the newest production one must be used, not a newer one without
    # the production tag, nor an older production one.
    wanted = make_image(moto, "ci-base-2", {"base_name": "ci-base", "production": "true",
                                            "timestamp": "20261102"})
    make_image(moto, "ci-base-1", {"base_name": "ci-base", "production": "true",
                                   "timestamp": "20261101"})
    make_image(moto, "ci-base-3", {"base_name": "ci-base", "production": "false",
                                   "timestamp": "20261103"})
    ec2.create_key_pair(KeyName="ci-key")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.create_security_group(GroupName="ci-workers", Description="ci",
                                      VpcId=vpc)["GroupId"]
    # The worker port stays the same across the restart below, as a real master's does: the
    # instances' user data names it. The system picks it (port 0), the master binds it again.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        worker_port = probe.getsockname()[1]
    path = case.write_config(config(case, moto, {"group": group, "subnet": subnet,
                                                 "worker_port": worker_port}))
    args = ["--ec2-reconcile", "3"]
    master = case.start_master(path, args=args)

    # 1. A waiting request launches one instance, with everything the class says.
    request = force(case, master)
    instances = harness.wait_for("an instance tagged for this master",
                                 lambda: moto.tagged() or None, 30)
    case.check(len(instances) == 1, f"one request, one instance ({len(instances)})")
    instance_id, instance = next(iter(instances.items()))
    tags = tags_of(instance)
    case.check(tags.get("ci:master") == HOST and tags.get("ci:class") == "aws" and
               tags.get("ci:worker", "").startswith("aws/") and tags.get("team") == "ci" and
               tags.get("Name", "").startswith("libci-aws/"),
               f"tagged at launch: {tags}")
    case.check(instance["InstanceType"] == "c5.large", f"type {instance['InstanceType']}")
    case.check(instance.get("InstanceLifecycle") == "spot",
               f"spot (max_spot_price): {instance.get('InstanceLifecycle')}")
    case.check(instance["ImageId"] == wanted,
               f"the newest production image {wanted}: {instance['ImageId']}")
    case.check(instance.get("KeyName") == "ci-key", f"key {instance.get('KeyName')}")
    case.check(instance.get("SubnetId") == subnet, f"subnet {instance.get('SubnetId')}")
    case.check(group in [g["GroupId"] for g in instance.get("SecurityGroups", [])],
               f"security group {instance.get('SecurityGroups')}")
    behaviour = ec2.describe_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior")
    case.check(behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate",
               f"shutdown behaviour {behaviour['InstanceInitiatedShutdownBehavior']}")

    name = tags.get("ci:worker")
    listed = {w["name"]: w for w in master.get("/api/v1/workers")["workers"]}
    shown = listed.get(name, {}).get("instance", {})
    case.check(shown.get("id") == instance_id and shown.get("type") == "c5.large" and
               shown.get("market") == "spot" and shown.get("launched"),
               f"the workers API shows the instance: {shown}")
    # Still one instance for one request a few ticks later.
    time.sleep(2)
    case.check(len(moto.tagged()) == 1, "no second instance while the first boots")

    # 2. The boot: a real ci-worker with what the instance's user data says.
    worker = boot(case, moto, master, instance_id, 7, tags)
    build = harness.wait_for("the build on the EC2 worker", lambda: build_of(master, request), 60)
    case.check(build["result"] == "success" and build["worker"] == name,
               f"the build ran on {build['worker']}: {build['result']}")

    # 3. Idle for build_wait_timeout (8 s): terminated.
    harness.wait_for("the idle instance to be terminated",
                     lambda: moto.state(instance_id) in ("shutting-down", "terminated"), 40)
    case.check(True, "the idle instance was terminated")
    worker.kill()
    seconds = metric(master, "ci_ec2_instance_seconds_total", {"class": "aws", "market": "spot"})
    case.check(seconds is not None and seconds > 0,
               f"ci_ec2_instance_seconds_total counts the instance's time ({seconds})")
    case.check(metric(master, "ci_ec2_instances",
                      {"class": "aws", "market": "spot", "state": "running"}) == 0,
               "ci_ec2_instances shows no running instance")

    # 4. kill -9 right after a launch: restarted, the master adopts the instance (its worker's
    # key is in the store) and keeps it while its missing_timeout (15 s from its launch) runs;
    # its worker never boots here, so it is then terminated, never forgotten.
    second = force(case, master)
    launched = harness.wait_for("a second launch", lambda: moto.tagged(("pending", "running"))
                                or None, 30, interval=0.02)
    master.kill(signal.SIGKILL)
    never_booted = next(iter(launched))
    # And one tagged instance it never knew (another master's crash, a lost answer).
    base = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    stranger = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                 TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                     {"Key": "ci:master", "Value": HOST},
                                     {"Key": "ci:class", "Value": "aws"}]}])
    stranger_id = stranger["Instances"][0]["InstanceId"]
    master.start()
    harness.wait_for("the unknown tagged instance to be terminated",
                     lambda: moto.state(stranger_id) in ("shutting-down", "terminated"), 30)
    case.check(True, "after the restart, the unknown tagged instance was terminated")
    adopted = {w["name"]: w.get("instance", {}).get("id")
               for w in master.get("/api/v1/workers")["workers"]}
    case.check(moto.state(never_booted) in ("pending", "running") and
               never_booted in adopted.values(),
               f"the instance launched before the kill is adopted, not terminated: "
               f"{moto.state(never_booted)}, workers API {adopted}")
    harness.wait_for("the adopted instance whose worker never connected to be terminated",
                     lambda: moto.state(never_booted) in ("shutting-down", "terminated"), 40)
    case.check(moto.state(stranger_id) in ("shutting-down", "terminated"), "still terminated")
    fresh = harness.wait_for("a fresh instance for the waiting request", lambda: {
        i: x for i, x in moto.tagged(("pending", "running")).items()
        if i not in (never_booted, stranger_id)} or None, 30)
    fresh_id = next(iter(fresh))
    case.check(len(fresh) == 1, f"one fresh instance for the request ({len(fresh)})")
    worker = boot(case, moto, master, fresh_id, 8, tags_of(fresh[fresh_id]))
    name = worker.name
    build = harness.wait_for("the waiting build on the fresh instance",
                             lambda: build_of(master, second), 60)
    case.check(build["result"] == "success" and build["worker"] == name,
               f"the request that waited through the crash ran on {build['worker']}")

    # 5. kill -9 while the fresh instance's worker is connected (idle, before its
    # build_wait_timeout): restarted, the master adopts it, its worker logs in again with its
    # rotated secret (the store has only its key), and it runs the next build; no new launch.
    master.kill(signal.SIGKILL)
    master.start()
    third = force(case, master)
    build = harness.wait_for("the next build on the adopted instance",
                             lambda: build_of(master, third), 60)
    case.check(build["result"] == "success" and build["worker"] == name,
               f"the adopted instance's worker ran the next build: {build['worker']} "
               f"{build['result']}")
    running = set(moto.tagged(("pending", "running")))
    case.check(running == {fresh_id},
               f"the adopted instance runs, and no other was launched: {sorted(running)}")
    log = case.logs()[f"master-{master.starts}.log"]
    case.check("1 adopted" in log, "the restarted master logged the adoption")

    # 6. A graceful stop leaves nothing running.
    master.kill(signal.SIGTERM)
    worker.kill()
    left = {i: x["State"]["Name"] for i, x in moto.tagged(("pending", "running")).items()}
    case.check(not left, f"no tagged instance left running after the master stopped: {left}")
    log = "".join(case.logs().values())
    case.check("ec2: " in log and "tagged instance(s) this master does not know" in log,
               "the unknown instance was logged as an operational error")
    case.check("never connected within 15 s of its launch" in log,
               "the adopted instance whose worker never connected was logged as one")


if __name__ == "__main__":
    harness.run(main)
