#!/usr/bin/env python3
"""Commit statuses on a local GitHub that checks them as GitHub does: a passing and a failing
branch get pending, pending with the build's link, then success or failure (with the JUnit test
counts and the failed test's name in the description), on the pushed tip (never the merge
commit), once each, in order; a builder of failing_builders reports nothing
unless forced with report_expected_failures: true; a builder outside github.builders reports
nothing."""

import json
import time

import master_harness as harness

PENDING, STARTED = ("pending", False), ("pending", True)


def main(case):
    fake = case.start_fake_github()
    case.repo.advance_master()  # the builds below are merges: their merge commits are not pushed
    master = case.start_master(case.write_config(case.github_config()))
    tips = {}
    for branch, files in (("feature/pass", ["pass.txt"]), ("feature/fail", ["broken"])):
        tips[branch] = case.repo.branch(branch, files, base="master~1")
        master.push(branch, harness.ZERO, tips[branch])
    expected = {tips["feature/pass"]: "success", tips["feature/fail"]: "failure"}
    for tip, result in expected.items():
        harness.wait_for(f"the {result} status of {tip[:12]}",
                         lambda tip=tip: len(fake.accepted(tip, "libci/tests")) >= 3, 60)
    # Every build ended (flaky and quiet too) before what was not sent is checked.
    harness.wait_for("six finished builds", lambda: len(
        [b for b in master.builds() if b["result"] not in ("running", "retry")]) >= 6, 60)
    for tip, result in expected.items():
        case.check(fake.accepted(tip, "libci/tests") == [PENDING, STARTED, (result, True)],
                   f"{tip[:12]} libci/tests: pending, pending with a link, {result}, once each "
                   f"({fake.accepted(tip, 'libci/tests')})")
    # The JUnit counts of builder tests (TEST_SCRIPT's reports/junit.xml) in the final status.
    finals = {s["sha"]: s.get("description") for s in fake.statuses
              if s.get("context") == "libci/tests" and s["state"] != "pending"}
    case.check(finals.get(tips["feature/pass"]) == "Build succeeded: 2 tests passed, 1 skipped",
               f"the success status gives the test counts ({finals.get(tips['feature/pass'])!r})")
    case.check(finals.get(tips["feature/fail"]) ==
               "Build failed: 1 of 3 tests failed (app.Tests.test_broken)",
               f"the failure status gives the counts and the failed test "
               f"({finals.get(tips['feature/fail'])!r})")
    merges = {b["merge_commit"] for b in master.builds()}
    case.check(all(s["sha"] in expected for s in fake.statuses) and
               not merges & {s["sha"] for s in fake.statuses},
               "statuses are on the pushed tips, never on a merge commit")
    case.check(fake.accepted(context="libci/flaky") == [] and
               fake.accepted(context="libci/quiet") == [],
               "a builder of failing_builders and one outside github.builders report nothing")
    links = [s["target_url"] for s in fake.statuses if s.get("target_url")]
    case.check(all(link.startswith("http://ci.example.org:8010/api/v1/builds/") for link in links),
               f"links go to buildmaster.url ({links[:1]})")

    # Forced with report_expected_failures: the failing builder reports; forced without, not.
    fail_tip = tips["feature/fail"]
    for properties in ({"report_expected_failures": True}, {}):
        status, answer = master.post(
            "/api/v1/builders/flaky/force",
            json.dumps({"branch": "feature/fail", "revision": fail_tip,
                        "properties": properties}).encode(),
            {"Content-Type": "application/json"}, auth=case.auth)
        case.check(status == 202, f"forced flaky with {properties}: {status} {answer}")
        harness.wait_for("the forced build to end", lambda: len(
            [b for b in master.builds() if b["result"] not in ("running", "retry")]) >= (
                7 if properties else 8), 60)
    harness.wait_for("the forced flaky failure status",
                     lambda: len(fake.accepted(fail_tip, "libci/flaky")) >= 3, 30)
    time.sleep(1.5)  # time for anything the second force would wrongly send
    case.check(fake.accepted(fail_tip, "libci/flaky") == [PENDING, STARTED, ("failure", True)],
               f"forced with report_expected_failures: true, flaky reports its failure; forced "
               f"without, nothing ({fake.accepted(fail_tip, 'libci/flaky')})")
    case.check(fake.refused == [], f"GitHub refused nothing ({fake.refused[:3]})")


if __name__ == "__main__":
    harness.run(main)
