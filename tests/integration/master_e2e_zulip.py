#!/usr/bin/env python3
"""Zulip summaries on a local Zulip that checks them as Zulip does: a push whose builders pass
and fail gets one summary once all of them ended, in its stream and topic, with each builder's
result, link and JUnit test counts, the failing step's last lines and the failed test's name; a
failure on the default branch also goes to the critical stream. Then Zulip down while a push's
summary is queued and the master killed with -9: after the restart and Zulip's return it arrives
once, and nothing sent before the kill is sent again."""

import signal
import time

import master_harness as harness

BUILDERS = ("tests", "lint", "pytest")


def ended(master, tip):
    return harness.wait_for(f"the builds of {tip[:12]}", lambda: len(
        [b for b in master.builds() if b["branch_tip"] == tip and
         b["result"] not in ("running", "retry")]) == len(BUILDERS), 60)


def main(case):
    fake = case.start_fake_zulip()
    master = case.start_master(case.write_config(case.zulip_config()))

    # A push whose builders pass and fail: one summary, once all ended.
    mixed = case.repo.branch("feature/mixed", ["broken"])
    master.push("feature/mixed", harness.ZERO, mixed)
    ended(master, mixed)
    harness.wait_for("the summary of feature/mixed",
                     lambda: fake.accepted("builds", "demo : feature/mixed"), 30)
    time.sleep(1.5)  # a second message would come now
    summaries = fake.accepted(topic="demo : feature/mixed")
    case.check(len(summaries) == 1 and summaries[0]["to"] == "builds",
               f"one summary in stream builds, topic 'demo : feature/mixed' "
               f"({[(m['to'], m['topic']) for m in summaries]})")
    text = summaries[0]["content"] if summaries else ""
    case.check(f"`{mixed[:12]}`" in text and "**2 of 3 builds failed**" in text,
               f"it names the pushed tip and counts the failures: {text[:120]!r}")
    case.check("* lint: success in " in text and "* tests: **failure** in " in text and
               "* pytest: **failure** in " in text,
               "it lists each builder's result and duration")
    case.check(text.count("](http://ci.example.org:8010/api/v1/builds/") == 3,
               "each builder's line links to its build (buildmaster.url)")
    case.check("the tests fail: broken is here" in text,
               "a failed step's last lines are there (tests)")
    case.check("), tests: 1 passed, 1 failed, 1 skipped, 0 errors, step `test`" in text and
               "**tests**, step `test`: failed tests `app.Tests.test_broken`" in text,
               "the JUnit counts and the failed test's name of builder tests are there")
    case.check("failed tests `tests/test_app.py::test_broken`" in text and
               "1 failed, 1 passed in 0.02s" in text,
               "the failed test's name and the last lines of pytest's output are there")
    case.check(fake.accepted("critical") == [], "a feature branch's failure is not critical")

    # Zulip down with a summary queued, the master killed: it arrives once after the restart.
    fake.mode = "down"
    second = case.repo.branch("feature/second", ["second.txt"])
    master.push("feature/second", harness.ZERO, second)
    ended(master, second)
    before = fake.attempts
    harness.wait_for("a retry of the queued summary", lambda: fake.attempts > before + 1, 30)
    code = master.kill(signal.SIGKILL)
    case.check(code == -signal.SIGKILL, f"the master was killed by SIGKILL (status {code})")
    case.check(fake.accepted(topic="demo : feature/second") == [], "nothing accepted while down")
    fake.mode = "up"
    master.start()
    harness.wait_for("the queued summary after the restart",
                     lambda: fake.accepted(topic="demo : feature/second"), 60)
    time.sleep(2)
    second_summaries = fake.accepted(topic="demo : feature/second")
    case.check(len(second_summaries) == 1 and "3 builds passed" in second_summaries[0]["content"],
               f"the summary queued at the kill arrives after the restart, once "
               f"({len(second_summaries)})")
    case.check(len(fake.accepted(topic="demo : feature/mixed")) == 1,
               "the summary sent before the kill is not sent again")
    log = open(f"{case.tmp}/master-1.log").read()
    case.check("zulip: the message builds > demo : feature/second waits" in log,
               "the outage is logged")

    # A failure on the default branch also goes to the critical stream.
    broken_master = case.repo.branch("master", ["broken"])
    master.push("master", harness.ZERO, broken_master)
    ended(master, broken_master)
    harness.wait_for("the critical summary", lambda: fake.accepted("critical"), 30)
    time.sleep(1)
    critical = fake.accepted("critical")
    case.check(len(critical) == 1 and critical[0]["topic"] == "demo : master" and
               len(fake.accepted("builds", "demo : master")) == 1 and
               critical[0]["content"] == fake.accepted("builds", "demo : master")[0]["content"],
               f"the default branch's failure goes to builds and to critical, once each "
               f"({[(m['to'], m['topic']) for m in fake.messages]})")
    case.check(all(code == 503 for code, _ in fake.refused),
               f"only the outage refused anything ({fake.refused[:3]})")
    case.check(fake.accepted("ops") == [], "no operational error")


if __name__ == "__main__":
    harness.run(main)
