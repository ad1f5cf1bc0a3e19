#!/usr/bin/env python3
"""The EC2 pool never leaks through a faulty EC2 (issue 18): 100 randomized runs
(LIBCI_EC2_FAULT_RUNS), all drawn from one seed that is printed (LIBCI_EC2_FAULT_SEED=N
replays the same scripts; the timing differs), against moto_server behind a fault-injecting
proxy (ec2_proxy.py, which also keeps EC2's ClientToken idempotency that moto lacks).

How 100 runs fit in well under a minute: no master start per run (a start costs a second or
more) but two ci-masters for the whole test, each with its own buildmaster.host (so neither
reconciles the other's instances), state and config, each driving every other run; and a class
per run (`r007`, builder `b007`, `slaves: 1`, missing_timeout 1 s), so that each run's launch
is the first of its class (no backoff left by an earlier run holds it back) and its
RunInstances calls are known by their ci:class tag. A master's pool is one thread, so two runs
are in flight per master (the next request is forced while the pool is busy with the previous
launch); the pool's own retries and backoff set the pace (`--ec2-timeout 0.5` keeps a
timed-out attempt short). Six runs, at places the seed picks, signal their master the moment
its RunInstances reaches the proxy: three SIGKILL it (the call is still forwarded: the instance
exists and no master heard of it) and three SIGTERM it (the answer is lost and the retries get
500s: the stopping pool must find the instance by its tag); each time the master is started
again.

Each of the other runs forces one build request for its class and scripts the faults of its first
launch's RunInstances attempts (the HTTP client makes up to 4, with the same ClientToken):
none; 1 to 3 faults then an answer (the retries hide them from the pool); 4 RequestLimitExceeded
(the pool backs off; nothing was launched); or 4 faults that leave the pool without an answer
(HTTP 500 before or after moto made the instance, a lost answer, a timeout after or without
forwarding: the instance may exist, reconcile finds it by its ci:worker tag and the pool ends
it). Every other EC2 call (DescribeImages, DescribeInstances, TerminateInstances) is faulted
at random too. Then the request is cancelled: no build needs the instance.

Checked: after each SIGTERM, no instance of that run is left; at the end (faults off), within a
deadline, no instance tagged ci:master=<host> is pending or running; every instance of a leak
attempt (a RunInstances that made instances whose answer the master did not get) is listed in
this log with what became of it, and is terminated; no worker got two instances; RunInstances
itself was faulted with each of a timeout, an HTTP 500, RequestLimitExceeded and a lost answer
after the instance was made; the masters logged launches that failed and launches that got no
answer; graceful stops leave nothing. SKIPs (exit 77) loudly when moto_server is missing."""

import os
import random
import signal
import sys
import threading
import time

import master_harness as harness
from ec2_proxy import Ec2Proxy
from master_e2e_ec2 import HOST, REGION, Moto, make_image, moto_program, tags_of

EC2_TIMEOUT = 0.5   # --ec2-timeout: one attempt of an EC2 call
HOLD = 1.0          # a "timeout" fault holds the call this long (past EC2_TIMEOUT)
ATTEMPTS = 4        # the HTTP client's attempts per call (http::RetryPolicy::max_attempts)
BACKGROUND_RATE = 0.08
SIGNALLED_RUNS = 3  # runs whose master is killed (-9), and as many stopped (SIGTERM)
LANES = 2           # masters, each with its own buildmaster.host and every other run
HOSTS = [HOST] + [f"ci-ec2-test-{lane}.example.org" for lane in range(1, LANES)]
LIVE = ("pending", "running")
# Faults of a RunInstances attempt; a timed-out one costs the pool EC2_TIMEOUT, so it is rarer.
RUN_FAULTS = ("500", "throttle", "500-after", "lost") * 3 + ("timeout", "hang")
NO_ANSWER_FAULTS = ("500", "500-after", "lost") * 3 + ("timeout", "hang")


def tagged(case, states):
    """Every instance tagged ci:master=<one of HOSTS> in `states`, by id (read from moto
    directly, not through the proxy)."""
    found = {}
    pages = case.moto.ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": "tag:ci:master", "Values": HOSTS},
        {"Name": "instance-state-name", "Values": list(states)}])
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = instance
    return found


def config(case, host, endpoint, state, runs):
    classes = "\n".join(
        f"  r{i:03}: {{ami: ci-base, slaves: 1, instance_type: t2.micro, missing_timeout: 1, "
        f"build_wait_timeout: 1}}" for i in range(runs))
    builders = "\n".join(
        f"  b{i:03}: {{workers: [r{i:03}], steps: [{{name: t, run: \"true\"}}]}}"
        for i in range(runs))
    names = ", ".join(f"b{i:03}" for i in range(runs))
    return f"""
buildmaster: {{host: {host}, web_port: 0, worker_port: 0, state: {state}}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
aws: {{identifier: {case.moto.key_id}, secret_identifier: "{case.moto.secret}",
       region: {REGION}, endpoint_url: "{endpoint}"}}
slaves:
{classes}
builders:
{builders}
schedulers:
  force: {{type: force, builders: [{names}]}}
"""


def plan_for(rng, kind=None):
    """The run's script: (kind, faults of the first launch's RunInstances attempts). `kind`:
    "crash" or "stop" (the master gets a signal at the launch), else drawn at random."""
    if kind == "crash":
        return kind, []
    if kind == "stop":  # the pool never hears the answer: 500s after the instance was made
        return kind, ["lost", "500", "500", "500"]
    roll = rng.random()
    if roll < 0.35:  # only the other calls are faulted (at random)
        return "clean", []
    if roll < 0.85:  # retried through: each retry waits the HTTP client's backoff
        count = rng.choice((1, 1, 1, 1, 1, 1, 2, 2, 3))
        faults = [rng.choice(RUN_FAULTS) for _ in range(count)]
    elif roll < 0.91:  # the pool is told RequestLimitExceeded
        faults = ["throttle"] * ATTEMPTS
    else:  # the pool gets no answer: it cannot know whether an instance exists
        faults = [rng.choice(NO_ANSWER_FAULTS) for _ in range(ATTEMPTS)]
    # A timed-out attempt costs the pool EC2_TIMEOUT: at most one per run keeps 100 runs short.
    held = [i for i, fault in enumerate(faults) if fault in ("timeout", "hang")]
    for i in held[1:]:
        faults[i] = rng.choice(("500-after", "lost"))
    kind = "retried" if len(faults) < ATTEMPTS else (
        "throttled" if faults[0] == "throttle" else "no-answer")
    return kind, faults


class Faults:
    """The proxy's `decide`: each run's script for its class's first ClientToken, and random
    background faults for every other call while `on`."""

    def __init__(self, rng):
        self.rng = rng
        self.on = True
        self.plans = {}        # class -> list of faults by attempt
        self.first_token = {}  # class -> its first launch's ClientToken
        self.attempts = {}     # ClientToken -> attempts seen
        self.signal = {}       # class -> function called when its first RunInstances arrives

    def __call__(self, call):
        if call.action == "RunInstances":
            worker_class = call.tags().get("ci:class", "")
            token = call.params.get("ClientToken", "")
            self.first_token.setdefault(worker_class, token)
            attempt = self.attempts.get(token, 0)
            self.attempts[token] = attempt + 1
            if token == self.first_token[worker_class]:
                if worker_class in self.signal and self.signal.pop(worker_class)():
                    return "killed"
                plan = self.plans.get(worker_class, [])
                return plan[attempt] if attempt < len(plan) else None
        if self.on and self.rng.random() < BACKGROUND_RATE:
            return self.rng.choice(("500", "throttle", "500-after", "lost"))
        return None


class Run:
    """One run: its class, builder, script, and the build request it forced."""

    def __init__(self, index, rng, kind=None):
        self.index, self.rng = index, rng
        self.worker_class, self.builder = f"r{index:03}", f"b{index:03}"
        self.kind, self.plan = plan_for(rng, kind)
        self.requests = []
        self.began = time.monotonic()

    def attempts(self, proxy, faults):
        token = faults.first_token.get(self.worker_class)
        return [call for call in proxy.calls_of("RunInstances")
                if token and call.params.get("ClientToken") == token]

    def launch_done(self, proxy, faults):
        """Its first launch made the attempts its script needs and the last one is over."""
        expected = min(len(self.plan) + 1, ATTEMPTS)
        attempts = self.attempts(proxy, faults)
        return len(attempts) >= expected and attempts[expected - 1].outcome is not None

    def force(self, case, master):
        status, answer = master.post(f"/api/v1/builders/{self.builder}/force", b"{}",
                                     auth=case.auth)
        if status != 202:
            case.check(False, f"run {self.index}: forcing {self.builder}: {status} {answer}")
        self.requests = answer["requests"] if status == 202 else []

    def cancel(self, case, master):
        for request in self.requests:
            master.post(f"/api/v1/buildrequests/{request}/cancel", auth=case.auth)

    def report(self, proxy, faults):
        seen = [call.outcome or "held" for call in self.attempts(proxy, faults)]
        print(f"run {self.index} ({self.worker_class}): {self.kind}; RunInstances attempts: "
              f"{', '.join(seen) or 'none'} ({time.monotonic() - self.began:.2f} s)",
              flush=True)


class Runner:
    """One master's runs, one after another, two in flight: the next run's request is forced
    while the pool is still busy with the previous launch (its class is another), and each
    request is cancelled a random moment after its launch is over. A crash or stop run goes
    alone."""

    def __init__(self, case, master, proxy, faults):
        self.case, self.master, self.proxy, self.faults = case, master, proxy, faults
        self.in_flight = []
        self.cancels = []

    def run(self, run):
        if run.kind in ("crash", "stop"):
            self.drain()
            self.alone(run)
            return
        with self.proxy.lock:
            self.faults.plans[run.worker_class] = run.plan
        run.force(self.case, self.master)
        self.in_flight.append(run)
        while len(self.in_flight) > 1:
            self.finish(self.in_flight.pop(0))

    def finish(self, run):
        harness.wait_for(f"run {run.index}: the launch of {run.worker_class} ({run.kind})",
                         lambda: run.launch_done(self.proxy, self.faults), 20, 0.01)
        run.report(self.proxy, self.faults)
        cancel = threading.Timer(run.rng.uniform(0, 0.2), run.cancel, (self.case, self.master))
        cancel.start()
        self.cancels.append(cancel)

    def drain(self):
        while self.in_flight:
            self.finish(self.in_flight.pop(0))
        for cancel in self.cancels:
            cancel.join()
        self.cancels.clear()

    def alone(self, run):
        """The master gets a signal the moment its RunInstances reaches the proxy: SIGKILL
        (the call is forwarded, then dropped: the instance exists, no master heard of it), or
        SIGTERM (the answer is lost and the retries time out: the stopping pool must find
        the instance by its tag). Then the master is started again."""
        master, signalled = self.master, threading.Event()
        sig = signal.SIGKILL if run.kind == "crash" else signal.SIGTERM

        def send():
            os.killpg(master.process.pid, sig)
            signalled.set()
            return sig == signal.SIGKILL
        with self.proxy.lock:
            self.faults.plans[run.worker_class] = run.plan
            self.faults.signal[run.worker_class] = send
        run.force(self.case, master)
        harness.wait_for(f"run {run.index}: the master signalled at its RunInstances",
                         signalled.is_set, 20, 0.01)
        status = master.process.wait(timeout=60)
        if sig == signal.SIGTERM:
            self.case.check(status == 0, f"run {run.index}: the master stopped (exit {status})")
            left = {i: instance for i, instance in tagged(self.case, LIVE).items()
                    if tags_of(instance).get("ci:class") == run.worker_class}
            self.case.check(not left, f"run {run.index}: the stop terminated the instance of "
                            f"a launch it never heard the answer of: {sorted(left) or 'none left'}")
        master.start()
        # The request still waits: the new run of the master launches again (a new token).
        harness.wait_for(f"run {run.index}: a new launch of {run.worker_class}", lambda: any(
            call.tags().get("ci:class") == run.worker_class and call.outcome is not None and
            call.params.get("ClientToken") != self.faults.first_token[run.worker_class]
            for call in self.proxy.calls_of("RunInstances")), 20, 0.01)
        run.cancel(self.case, master)
        run.report(self.proxy, self.faults)


def main(case):
    if not moto_program():
        print("SKIP: moto_server not found (LIBCI_MOTO_SERVER unset, not in PATH; "
              "scripts/test.sh tries pip install 'moto[server]'): the EC2 faults are not tested",
              flush=True)
        sys.exit(77)
    runs = int(os.environ.get("LIBCI_EC2_FAULT_RUNS", "100"))
    seed = int(os.environ.get("LIBCI_EC2_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"seed {seed} ({runs} runs; LIBCI_EC2_FAULT_SEED={seed} replays the same faults, "
          f"timing apart)", flush=True)
    rng = random.Random(seed)
    started = time.monotonic()
    case.moto = Moto(case)
    proxy = None
    try:
        make_image(case.moto, "ci-base-1", {"base_name": "ci-base", "production": "true",
                                            "timestamp": "1"})
        faults = Faults(random.Random(rng.random()))
        proxy = Ec2Proxy(case.moto.endpoint, decide=faults, hold=HOLD)
        masters, runners = [], []
        for lane in range(LANES):
            state = os.path.join(case.tmp, f"state-{lane}.sqlite")
            path = case.write_config(config(case, HOSTS[lane], proxy.url, state, runs),
                                     f"config-{lane}.yml")
            masters.append(case.start_master(path, name=f"master-{'ab'[lane]}", args=[
                "--ec2-reconcile", "1", "--ec2-timeout", str(EC2_TIMEOUT)]))
            runners.append(Runner(case, masters[-1], proxy, faults))
        # A restart costs a second or two: a few runs, at places the seed picks.
        signalled = rng.sample(range(runs), min(runs, 2 * SIGNALLED_RUNS))
        special = {index: ("crash" if n % 2 == 0 else "stop")
                   for n, index in enumerate(signalled)}
        lanes = [[] for _ in range(LANES)]
        kinds = {}
        for index in range(runs):
            run = Run(index, random.Random(rng.random()), special.get(index))
            kinds[run.kind] = kinds.get(run.kind, 0) + 1
            lanes[index % LANES].append(run)
        failures = []

        def drive(runner, lane_runs):
            try:
                for run in lane_runs:
                    runner.run(run)
                runner.drain()
            except Exception as error:  # noqa: BLE001 - reported by the main thread
                failures.append(error)
        threads = [threading.Thread(target=drive, args=(runners[lane], lanes[lane]))
                   for lane in range(LANES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        print(f"runs by kind: {kinds}; {time.monotonic() - started:.1f} s so far", flush=True)
        print("EC2 calls through the proxy (count, seconds to answer in all): " + ", ".join(
            f"{action} {count} {seconds:.1f} s"
            for action, (count, seconds) in sorted(proxy.busy_seconds().items())), flush=True)

        with proxy.lock:
            faults.on = False
        left = {}

        def settled():
            left.clear()
            left.update(tagged(case, LIVE))
            return not left
        try:  # 45 s: a reconcile whose listing failed is tried again 30 s later
            harness.wait_for("no tagged instance left pending or running", settled, 45, 0.5)
        except AssertionError:
            pass
        case.check(not left, "no instance is left running that no build needs: " + (
            ", ".join(f"{i} ({tags_of(instance)})" for i, instance in left.items())
            or "none left"))

        attempts = proxy.leak_attempts
        everything = tagged(case, ("pending", "running", "stopping", "stopped",
                                   "shutting-down", "terminated"))
        print(f"leak attempts by the proxy: {len(attempts)}", flush=True)
        for attempt in attempts:
            ends = [everything[i]["State"]["Name"] if i in everything else "unknown to moto"
                    for i in attempt["ids"]]
            print(f"  leak attempt: {attempt['why']} on RunInstances of worker "
                  f"{attempt['worker']} ({attempt['class']}): {', '.join(attempt['ids'])} -> "
                  f"{', '.join(ends)}", flush=True)
            case.check(all(end in ("terminated", "shutting-down") for end in ends),
                       f"the instance of leak attempt {attempt['worker']} ({attempt['why']}) "
                       f"was terminated")

        by_worker = {}
        for instance_id, instance in everything.items():
            worker = tags_of(instance).get("ci:worker", "")
            by_worker.setdefault(worker, []).append(instance_id)
        twice = {w: ids for w, ids in by_worker.items() if len(ids) > 1}
        case.check(not twice, f"no worker got two instances (one ClientToken each): "
                   f"{twice or 'none did'}")

        run_calls = [call for call in proxy.calls if call.action == "RunInstances"]
        injected = {}
        for call in run_calls:
            if call.fault:
                injected[call.fault] = injected.get(call.fault, 0) + 1
        print(f"RunInstances calls: {len(run_calls)}, faults injected into them: {injected}",
              flush=True)
        for kinds_of_fault, what in ((("timeout", "hang"), "a timeout"),
                                     (("500", "500-after"), "an HTTP 500"),
                                     (("throttle",), "RequestLimitExceeded"),
                                     (("lost", "500-after", "timeout"),
                                      "a lost answer after the instance was made")):
            count = sum(injected.get(kind, 0) for kind in kinds_of_fault)
            case.check(count > 0, f"RunInstances itself was faulted with {what}: {count} time(s)")
        case.check(bool(attempts), f"the proxy tried to leak instances: {len(attempts)} "
                   f"attempt(s)")

        logs = "".join(open(os.path.join(case.tmp, name)).read()
                       for name in sorted(os.listdir(case.tmp))
                       if name.startswith("master-") and name.endswith(".log"))
        if kinds.get("throttled"):
            case.check("RequestLimitExceeded" in logs and "failed:" in logs,
                       "the master logged a launch that failed with RequestLimitExceeded")
        if kinds.get("no-answer"):
            case.check("got no answer" in logs,
                       "the master logged a launch that got no answer (reconcile decides)")

        for master in masters:
            status = master.kill(signal.SIGTERM)
            case.check(status == 0, f"{master.name} stopped gracefully (exit {status})")
        left = tagged(case, LIVE)
        case.check(not left, f"nothing tagged is running after the stops: "
                   f"{sorted(left) or 'none'}")
        elapsed = time.monotonic() - started
        print(f"{runs} runs and the checks took {elapsed:.1f} s (seed {seed})", flush=True)
    finally:
        if proxy:
            proxy.close()
        case.moto.stop()


if __name__ == "__main__":
    harness.run(main)
