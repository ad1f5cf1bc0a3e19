#!/usr/bin/env python3
"""Worker actions in the JSON API, with a real master and two real ci-worker processes over TLS:
pause while a build runs (the build finishes, the next build goes to the other worker), resume,
and a graceful shutdown during a build (the build finishes with its whole log, the worker process
exits 0, no new build goes to it); a paused worker killed and started again is still paused.
The routes are authenticated and CSRF-checked, an unknown worker is a 404, and the master's log
names the user."""

import os
import time

import master_harness as harness


def main(case):
    config = case.standard_config(workers="remote", locks="[]")
    master = case.start_master(case.write_config(config))
    w0, w1 = case.start_workers(master, 2)
    auth = case.auth

    def act(name, action, **kwargs):
        return master.post(f"/api/v1/workers/{name}/{action}", auth=kwargs.get("auth", auth),
                           headers=kwargs.get("headers"))

    def listed(name):
        found = [w for w in master.get("/api/v1/workers")["workers"] if w["name"] == name]
        return found[0] if found else None

    # Refused without a login, from another origin, for an unknown worker or action.
    case.check(act("remote/1", "pause", auth=None)[0] == 401, "pause without a login: 401")
    status, _ = act("remote/1", "pause", headers={"Origin": "http://evil.example"})
    case.check(status == 403, f"pause from another origin: 403 ({status})")
    status, answer = act("remote/9", "pause")
    case.check(status == 404 and "remote/9" in answer.get("error", ""),
               f"pause of an unknown worker: 404 naming it ({status} {answer})")
    case.check(act("remote/1", "explode")[0] == 404, "an unknown action: 404")
    case.check(listed("remote/1")["paused"] is False, "nothing was paused by refused requests")

    # remote/1 paused: the slow build goes to remote/0.
    status, answer = act("remote/1", "pause")
    case.check(status == 200 and answer["paused"] is True and answer["state"] == "paused",
               f"remote/1 paused ({status} {answer})")
    tip, build = case.slow_build(master)
    case.check(build["worker"] == "remote/0", f"the slow build runs on remote/0 ({build['worker']})")

    # Pause remote/0 while its build runs; resume remote/1.
    status, answer = act("remote/0", "pause")
    case.check(status == 200 and answer["paused"] is True, f"remote/0 paused ({status})")
    case.check(act("remote/1", "resume")[0] == 200, "remote/1 resumed")
    shown = listed("remote/0")
    case.check(shown["paused"] is True and shown["state"] == "paused"
               and shown["builds"] == [build["id"]],
               f"GET /api/v1/workers lists remote/0 paused with its build ({shown})")
    one = master.get("/api/v1/workers/remote/0")
    case.check(one["name"] == "remote/0" and one["paused"] is True,
               f"GET /api/v1/workers/remote/0 says it is paused ({one})")
    case.check(master.get_status("/api/v1/workers/remote/9")[0] == 404,
               "GET of an unknown worker: 404")
    fast = case.repo.branch("feature/fast", ["fast.txt"])
    master.push("feature/fast", harness.ZERO, fast)
    done = harness.wait_for("the fast build to end", lambda: master.finished_build(fast))
    case.check(done["worker"] == "remote/1" and done["result"] == "success",
               f"the next build went to remote/1 ({done['worker']}, {done['result']})")
    open(case.release, "w").close()
    done = harness.wait_for("the slow build to end", lambda: master.finished_build(tip))
    case.check(done["id"] == build["id"] and done["result"] == "success",
               f"the build on the paused worker finished ({done['result']})")
    status, answer = act("remote/0", "resume")
    case.check(status == 200 and answer["paused"] is False and listed("remote/0")["paused"] is False,
               f"remote/0 resumed ({status} {answer})")

    # Shutdown during a build: remote/1 paused so that the build goes to remote/0.
    os.remove(case.release)
    case.check(act("remote/1", "pause")[0] == 200, "remote/1 paused again")
    tip2, build2 = case.slow_build(master, "feature/slow2")
    case.check(build2["worker"] == "remote/0", f"the second slow build runs on remote/0")
    status, answer = act("remote/0", "shutdown")
    case.check(status == 200 and answer["state"] == "shutting down",
               f"remote/0 shutting down ({status} {answer})")
    status, _ = act("remote/0", "resume")
    case.check(status == 409, f"a worker shutting down cannot be resumed: 409 ({status})")
    case.check(act("remote/1", "resume")[0] == 200, "remote/1 resumed again")
    fast2 = case.repo.branch("feature/fast2", ["fast2.txt"])
    master.push("feature/fast2", harness.ZERO, fast2)
    done = harness.wait_for("the second fast build to end", lambda: master.finished_build(fast2))
    case.check(done["worker"] == "remote/1", f"the next build went to remote/1 ({done['worker']})")
    case.check(w0.process.poll() is None, "remote/0 waits for its build")
    open(case.release, "w").close()
    status = w0.process.wait(timeout=60)
    case.check(status == 0, f"remote/0 exits 0 once its build ended ({status})")
    done = harness.wait_for("the second slow build to end", lambda: master.finished_build(tip2))
    case.check(done["id"] == build2["id"] and done["result"] == "success",
               f"the build on the worker shutting down finished ({done['result']})")
    case.check("all tests passed" in master.step_log(build2["id"]), "with its whole log")
    case.check("shut down by the master: every build has ended" in w0.log(),
               "the worker says why it exited")
    harness.wait_for("remote/0 listed as shut down",
                     lambda: listed("remote/0")["state"] == "shut down", 30)
    case.check(listed("remote/0")["connected"] is False, "remote/0 is not connected")
    status, _ = act("remote/0", "shutdown")
    case.check(status == 409, f"shutdown of a worker not connected: 409 ({status})")
    on_w0 = sorted(b["id"] for b in master.builds() if b["worker"] == "remote/0")
    case.check(on_w0 == sorted([build["id"], build2["id"]]),
               f"remote/0 ran only the two slow builds ({on_w0})")
    case.check(w1.process.poll() is None, "remote/1 still runs")

    # A reconnect does not unpause: remote/1 paused, killed and started again.
    case.check(act("remote/1", "pause")[0] == 200, "remote/1 paused before its restart")
    w1.kill()
    harness.wait_for("remote/1 gone", lambda: not listed("remote/1")["connected"], 30)
    case.check(listed("remote/1")["paused"] is True, "remote/1 listed paused while disconnected")
    again = case.start_worker(master, 1)
    harness.wait_for("remote/1 back", lambda: master.connected("remote/1"), 30)
    shown = listed("remote/1")
    case.check(shown["paused"] is True and shown["state"] == "paused",
               f"remote/1 is still paused after reconnecting ({shown})")
    fast3 = case.repo.branch("feature/fast3", ["fast3.txt"])
    master.push("feature/fast3", harness.ZERO, fast3)
    time.sleep(3)  # tree_stable_timer 1 s, then a dispatch pass: it would have started by now
    case.check(master.running_build(fast3) is None and master.finished_build(fast3) is None,
               "no build starts on the paused worker that reconnected")
    case.check(act("remote/1", "resume")[0] == 200, "remote/1 resumed after its restart")
    done = harness.wait_for("the third fast build to end", lambda: master.finished_build(fast3))
    case.check(done["worker"] == "remote/1", f"it ran on remote/1 once resumed ({done['worker']})")
    case.check(again.process.poll() is None, "the restarted remote/1 runs")
    log = open(os.path.join(case.tmp, "master-1.log")).read()
    user = auth[0]
    for line in (f"worker remote/0 paused by {user}", f"worker remote/0 resumed by {user}",
                 f"worker remote/0 shut down by {user}", "worker remote/0 shut down ("):
        case.check(line in log, f"the master's log says '{line}'")


if __name__ == "__main__":
    harness.run(main)
