#!/usr/bin/env python3
"""A push builds after the tree-stable wait on a ci-worker, as a merge against master whose
commit equals what the git CLI makes; its step ran in that merge and its log is stored. A
failing branch ends "failure" with the step's exit code and log."""

import os

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    good_tip = case.repo.branch("feature/good", ["good.txt"])
    bad_tip = case.repo.branch("feature/bad", ["broken"])
    master_tip = case.repo.advance_master()  # the branches forked before: builds are merges
    case.start_workers(master, 1)
    master.push("feature/good", harness.ZERO, good_tip, "good")
    master.push("feature/bad", harness.ZERO, bad_tip, "bad")

    good = harness.wait_for("the good build", lambda: master.finished_build(good_tip))
    case.check(good["result"] == "success", f"feature/good: success ({good['result']})")
    # The oracle: git merge with the merge-forward identity and the tip's committer date.
    oracle = os.path.join(case.tmp, "oracle")
    harness.git("clone", "-q", case.repo.origin, oracle)
    harness.git("checkout", "-q", "--detach", "origin/feature/good", cwd=oracle)
    date = harness.git("log", "-1", "--format=%cd", "--date=raw", cwd=oracle)
    identity = {"GIT_AUTHOR_NAME": "libci", "GIT_AUTHOR_EMAIL": "ci@localhost",
                "GIT_COMMITTER_NAME": "libci", "GIT_COMMITTER_EMAIL": "ci@localhost",
                "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    harness.git("merge", "-q", "--no-ff", "--no-stat", "-m", "Merge forward.", "origin/master",
                cwd=oracle, env=identity)
    expected = harness.git("rev-parse", "HEAD", cwd=oracle)
    case.check(good["merge_commit"] == expected and good["target_tip"] == master_tip,
               f"built as a merge against master: {good['merge_commit']} == git's {expected}, "
               f"target {good['target_tip']} == {master_tip}")
    log = master.step_log(good["id"])
    case.check(f"testing {expected}" in log and "all tests passed" in log,
               "the step ran in the merge commit and its log is stored")

    bad = harness.wait_for("the bad build", lambda: master.finished_build(bad_tip))
    steps = master.get(f"/api/v1/builds/{bad['id']}")["steps"]
    bad_log = master.step_log(bad["id"])
    case.check(bad["result"] == "failure" and steps[1]["exit_code"] == 3 and
               "the tests fail: broken is here" in bad_log,
               f"feature/bad: failure, exit code 3, with its log ({bad['result']}, "
               f"{steps[1]['exit_code']})")


if __name__ == "__main__":
    harness.run(main)
