#!/usr/bin/env python3
"""A reporter that gives up is logged and reported (issue 19): GitHub stays down past
`github.give_up` (2 s); each status is dropped with an error in the master's log naming it, and
each drop goes to Zulip's `ops_stream` (topic `libci`) while the push's summary still goes to
its stream. Neither the token nor the API key shows in a message or a log line."""

import master_harness as harness


def main(case):
    github, zulip = case.start_fake_github(), case.start_fake_zulip()
    github.mode = "down"
    master = case.start_master(case.write_config(case.reporters_config(
        ("tests",), github_extra="  give_up: 2s\n", zulip_extra="  ops_stream: ops\n")))
    tip = case.repo.branch("feature/lost", ["lost.txt"])
    master.push("feature/lost", harness.ZERO, tip)

    harness.wait_for("three statuses given up, told to ops",
                     lambda: len(zulip.accepted("ops")) >= 3, 60)
    ops = zulip.accepted("ops")
    case.check(len(ops) == 3 and all(m["topic"] == "libci" for m in ops),
               f"one ops message per status given up, topic libci ({len(ops)})")
    texts = [m["content"] for m in ops]
    case.check(all(f"gave up on the status libci/demo {tip[:12]} libci/tests" in t
                   for t in texts) and any(": pending" in t for t in texts)
               and any(": success" in t for t in texts),
               f"each names the status it dropped ({texts})")
    harness.wait_for("the push's summary", lambda: zulip.accepted("builds"), 30)
    case.check(len(zulip.accepted("builds")) == 1, "the summary went to its stream")
    log = open(f"{case.tmp}/master-1.log").read()
    case.check(log.count("gave up on the status libci/demo") == 3 and "github.give_up" in log,
               "each drop is an error in the master's log")
    case.check(github.accepted() == [] and {c for c, _ in github.refused} == {503},
               "GitHub accepted nothing, refused only as down")
    sent = "".join(m["content"] + m["topic"] for m in zulip.messages)
    case.check(case.github_token not in sent and case.zulip_key not in sent,
               "no message holds the token or the key")


if __name__ == "__main__":
    harness.run(main)
