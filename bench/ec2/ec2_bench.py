#!/usr/bin/env python3
"""The EC2 pool against moto_server (issue 18's benchmark), in one run:

    bench/ec2/ec2_bench.py [BUILD_DIR] [--samples 10] [--count 500] [--rounds 5]

1. Launch latency (target: under 100 ms): a real ci-master whose aws.endpoint_url is a
   recording proxy in front of moto (tests/integration/ec2_proxy.py, which stamps each call
   with time.monotonic() once its headers are read). For each of SAMPLES build requests forced
   through the REST API, the time from just before the POST to the moment the master's
   RunInstances call reaches the proxy: the API, the store's ingest, the pool's wake-up, its
   tick, the intent stored, the image (looked up with DescribeImages at moto by the first
   launch, a round trip printed apart; the later ones take it from the pool's cache, fresh for
   5 minutes), the token issued, the call signed and sent. No peer: the
   figure is compared with the target.
2. Reconcile of COUNT tagged instances (target: under 1 s of master CPU): the pool itself
   (master/ec2_pool.h, the real Ec2Client over libcurl, its SQLite store) in
   build/bench/ec2_reconcile_bench, which launches COUNT instances for COUNT waiting requests,
   then reconciles ROUNDS times (DescribeInstances pages of 100 from moto, the comparison with
   the pool, the changes stored) and prints the CPU seconds of its process (getrusage, user +
   system) per reconcile step, and of a step without a reconcile. The peer: botocore (the
   AWS SDK for Python) paging the same COUNT instances with the same filter, CPU seconds of
   this process (getrusage) per listing. The ratio is libci's whole reconcile step against
   botocore's listing alone (it parses the same pages but compares and stores nothing).

moto's own time is in the wall figures, not in the CPU ones (it is another process). Prints
numbers; does not assert. About a minute for 500 instances.
"""

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LATENCY_HOST = "ci-ec2-bench-latency.example.org"
RECONCILE_HOST = "ci-ec2-bench.example.org"  # as ec2_reconcile_bench's config names it
TARGET_LAUNCH_MS = 100
TARGET_RECONCILE_CPU_S = 1.0


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def launch_latency(case, harness, moto, samples):
    from ec2_proxy import Ec2Proxy  # noqa: PLC0415 - from tests/integration, on sys.path

    proxy = Ec2Proxy(moto.endpoint)
    arrived = threading.Condition(proxy.lock)
    proxy.listeners.append(lambda call: notify(arrived))
    config = case.write_config(f"""
buildmaster: {{host: {LATENCY_HOST}, web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
aws: {{identifier: {moto.key_id}, secret_identifier: "{moto.secret}", region: us-east-1,
       endpoint_url: "{proxy.url}"}}
slaves:
  bench: {{ami: ci-base, slaves: {samples}, instance_type: t2.micro, missing_timeout: 1h}}
builders:
  on-ec2: {{workers: [bench], steps: [{{name: t, run: "true"}}]}}
schedulers:
  force: {{type: force, builders: [on-ec2]}}
""")
    master = case.start_master(config, args=["--ec2-reconcile", "3600"])
    try:
        harness.wait_for("the pool's first reconcile", lambda: proxy.calls_of(
            "DescribeInstances") and all(c.outcome for c in proxy.calls_of("DescribeInstances")),
            30)
        time.sleep(0.5)
        totals, images, answers = [], [], []
        for sample in range(samples):
            before = len(proxy.calls_of("RunInstances"))
            start = time.monotonic()
            status, _ = master.post("/api/v1/builders/on-ec2/force", b"{}", auth=case.auth)
            answered = time.monotonic()
            if status != 202:
                raise AssertionError(f"force answered {status}")
            with arrived:
                arrived.wait_for(lambda: len([c for c in proxy.calls
                                              if c.action == "RunInstances"]) > before, 30)
            run = proxy.calls_of("RunInstances")[before]
            # The pool caches each class's image for Ec2Pool::image_ttl (5 minutes): only the
            # first launch looks it up.
            image = [c for c in proxy.calls_of("DescribeImages") if c.arrived >= start]
            totals.append((run.arrived - start) * 1000)
            if image:
                images.append((run.arrived - image[0].arrived) * 1000)
            answers.append((answered - start) * 1000)
            harness.wait_for("the RunInstances answer", lambda: run.outcome is not None, 30)
            looked_up = (f"DescribeImages at moto and after: {images[-1]:.1f} ms" if image
                         else "image from the pool's cache")
            print(f"  launch {sample + 1}: {totals[-1]:.1f} ms to RunInstances ({looked_up})",
                  flush=True)
            time.sleep(0.2)
        return totals, images, answers
    finally:
        master.kill(signal.SIGTERM)
        proxy.close()


def notify(condition):
    # The proxy calls listeners outside its lock: take it to notify.
    with condition:
        condition.notify_all()


def reconcile_cost(case, moto, build_dir, count, rounds):
    program = os.path.join(build_dir, "bench", "ec2_reconcile_bench")
    if not os.path.exists(program):
        raise SystemExit(f"error: {program} not built (meson setup -Dbench=enabled)")
    env = dict(os.environ, AWS_ENDPOINT_URL_EC2=moto.endpoint, AWS_ACCESS_KEY_ID=moto.key_id,
               AWS_SECRET_ACCESS_KEY=moto.secret)
    directory = os.path.join(case.tmp, "reconcile")
    os.makedirs(directory)
    output = subprocess.run([program, directory, str(count), str(rounds)], env=env,
                            capture_output=True, text=True, timeout=900)
    print(output.stdout, end="")
    if output.returncode != 0:
        raise SystemExit(f"error: ec2_reconcile_bench: {output.stderr.strip()}")
    return {line.split()[0]: float(line.split()[1]) for line in output.stdout.splitlines()}


def botocore_listing(moto, count, rounds):
    client = moto.ec2  # a boto3 client: botocore underneath
    # The pool's filters (ec2_pool.cpp's reconcile_filters).
    filters = [{"Name": "tag:ci:master", "Values": [RECONCILE_HOST]},
               {"Name": "instance-state-name",
                "Values": ["pending", "running", "shutting-down", "stopping", "stopped"]}]

    def listing():
        found, pages = 0, 0
        for page in client.get_paginator("describe_instances").paginate(Filters=filters):
            pages += 1
            for reservation in page["Reservations"]:
                found += len(reservation["Instances"])
        return found, pages

    listing()  # warm: the service model is loaded on the first call
    costs = []
    for _ in range(rounds):
        cpu, wall = cpu_seconds(), time.monotonic()
        found, pages = listing()
        costs.append((cpu_seconds() - cpu, time.monotonic() - wall))
        if found != count:
            raise SystemExit(f"error: botocore listed {found} instances, not {count}")
    costs.sort()
    return costs[0][0], costs[len(costs) // 2][0], costs[len(costs) // 2][1], pages


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir", nargs="?", default="build")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ["LIBCI_BUILD_DIR"] = os.path.abspath(args.build_dir)
    sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
    import master_harness as harness  # noqa: PLC0415 - needs LIBCI_BUILD_DIR
    from master_e2e_ec2 import Moto, make_image, moto_program  # noqa: PLC0415

    if not moto_program():
        raise SystemExit("error: moto_server not found (pip install 'moto[server]')")
    case = harness.Case("ec2-bench")
    moto = Moto(case)
    try:
        make_image(moto, "ci-base-1", {"base_name": "ci-base", "production": "true",
                                       "timestamp": "1"})
        print(f"== launch latency: {args.samples} forced requests, each to its RunInstances "
              f"at the proxy", flush=True)
        totals, images, answers = launch_latency(case, harness, moto, args.samples)
        print(f"== reconcile: {args.count} tagged instances, {args.rounds} rounds", flush=True)
        ours = reconcile_cost(case, moto, args.build_dir, args.count, args.rounds)
        best, median, wall, pages = botocore_listing(moto, args.count, args.rounds)
        import botocore  # noqa: PLC0415

        median_total = statistics.median(totals)
        print()
        print(f"launch latency (force to RunInstances): median {median_total:.1f} ms, "
              f"min {min(totals):.1f}, max {max(totals):.1f} over {len(totals)} "
              f"(target < {TARGET_LAUNCH_MS} ms: {median_total / TARGET_LAUNCH_MS:.2f}x of it, "
              f"max {'met' if max(totals) < TARGET_LAUNCH_MS else 'NOT met'})")
        looked_up = (f"median {statistics.median(images):.1f} ms" if images else "none")
        print(f"  DescribeImages before {len(images)} of {len(totals)} launches (the others "
              f"took the pool's cached image); DescribeImages (at moto) to RunInstances: "
              f"{looked_up}; the force answered after median "
              f"{statistics.median(answers):.1f} ms")
        step = ours["reconcile_step.cpu_s.median"]
        print(f"reconcile of {args.count} instances ({pages} pages): libci step CPU median "
              f"{step * 1000:.1f} ms (best {ours['reconcile_step.cpu_s.best'] * 1000:.1f}; a "
              f"step without reconcile {ours['tick.cpu_s.median'] * 1000:.1f} ms), wall "
              f"{ours['reconcile_step.wall_s.median'] * 1000:.0f} ms "
              f"(target < {TARGET_RECONCILE_CPU_S} s CPU: "
              f"{'met' if step < TARGET_RECONCILE_CPU_S else 'NOT met'})")
        print(f"  botocore {botocore.__version__} listing alone: CPU median {median * 1000:.1f} "
              f"ms (best {best * 1000:.1f}), wall {wall * 1000:.0f} ms")
        print(f"  ratio libci reconcile step / botocore listing (CPU): {step / median:.2f}x "
              f"(below 1: libci spends less)")
        print(f"launch of {args.count} through the pool: CPU {ours['launch.cpu_s']:.2f} s, wall "
              f"{ours['launch.wall_s']:.1f} s ({ours['launch.cpu_s'] / args.count * 1000:.2f} "
              f"ms CPU per launch)")
    finally:
        moto.stop()
        case.close()


if __name__ == "__main__":
    main()
