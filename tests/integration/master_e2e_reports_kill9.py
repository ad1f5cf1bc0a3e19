#!/usr/bin/env python3
"""No report is lost when the master is killed with -9 right after its builds ended: a build's
commit statuses and its push's Zulip event are stored in the transaction that records the event
(issue 19). Both fakes hold every request without answering ("hang"), so the reporters' threads
are stuck in their first send while twelve builds of three pushes run and end: what reaches the
outbox then is only what the master's own transactions stored. The master is killed the moment
the API shows the last build ended; after the restart every status of every build arrives, once,
in order per context, and every push's summary once."""

import signal
import time

import master_harness as harness

BUILDERS = ("b0", "b1", "b2", "b3")
PENDING, STARTED = ("pending", False), ("pending", True)


def settle(predicate, timeout=60):
    """Waits until `predicate` holds or `timeout` passed; the checks after it say what is
    missing."""
    try:
        harness.wait_for("the reports after the restart", predicate, timeout)
    except AssertionError as error:
        print(error, flush=True)


def main(case):
    github, zulip = case.start_fake_github(), case.start_fake_zulip()
    github.mode = zulip.mode = "hang"
    master = case.start_master(case.write_config(case.reporters_config(BUILDERS)))

    # Three pushes (the last one broken: its builds fail), twelve builds.
    tips = {}
    for i in range(3):
        branch = f"feature/k{i}"
        tips[branch] = case.repo.branch(branch, [f"k{i}.txt"] + (["broken"] if i == 2 else []))
        master.push(branch, harness.ZERO, tips[branch])
    wanted = set(tips.values())

    def all_ended():
        ended = [b for b in master.builds() if b["branch_tip"] in wanted and
                 b["result"] not in ("running", "retry")]
        return len(ended) == len(tips) * len(BUILDERS)

    harness.wait_for("the twelve builds to end", all_ended, 90, interval=0.02)
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    case.check(github.hung >= 1 and github.accepted() == [],
               f"GitHub held the first status unanswered: nothing accepted before the kill "
               f"({github.hung} held)")
    case.check(zulip.messages == [], "Zulip accepted nothing before the kill")

    github.release()
    zulip.release()
    master.start()
    expected = len(tips) * len(BUILDERS) * 3
    settle(lambda: len(github.accepted()) >= expected and len(zulip.messages) >= len(tips))
    time.sleep(2)  # anything sent twice would come now
    case.check(len(github.accepted()) == expected,
               f"{expected} statuses arrived, no more ({len(github.accepted())})")
    for branch, tip in tips.items():
        final = ("failure", True) if branch.endswith("2") else ("success", True)
        for builder in BUILDERS:
            got = github.accepted(tip, f"libci/{builder}")
            case.check(got == [PENDING, STARTED, final],
                       f"{branch} {builder}: requested, started, ended, in order, once ({got})")
    topics = sorted(m["topic"] for m in zulip.messages)
    case.check(topics == sorted(f"demo : {branch}" for branch in tips),
               f"one Zulip summary per push, once ({topics})")
    for message in zulip.messages:
        case.check(all(f"* {b}: " in message["content"] for b in BUILDERS),
                   f"the summary of {message['topic']} lists all four builders")
    log = open(f"{case.tmp}/master-2.log").read()
    case.check("left by the previous run are sent first" in log,
               "the restarted master sends what the killed one stored")


if __name__ == "__main__":
    harness.run(main)
