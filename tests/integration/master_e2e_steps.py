#!/usr/bin/env python3
"""Step controls and properties through a real ci-master and real ci-worker processes, all
forced at once with POST /api/v1/force and properties:
- always_run: a cleanup step runs after a failure ended the build, the steps between do not;
- warn_on_failure: a failing lint step makes the build `warnings`;
- inactivity_timeout: a silent step is stopped and its step says why;
- test_results: JUnit XML counts and failed test names in the build's JSON; logfiles: a step's
  extra log stored and served;
- set_property: `${prop:version}` set by one step reaches the next as one argument, with a
  forced property beside it; both are in the build's JSON.
And the force API's refusals: an unknown builder (nothing queued), bad property names and values.
"""

import json

import master_harness as harness

JUNIT = ('<testsuites><testsuite name="t">'
         '<testcase classname="app.Tests" name="test_ok"/>'
         '<testcase classname="app.Tests" name="test_ok2"/>'
         '<testcase classname="app.Tests" name="test_bad"><failure message="no"/></testcase>'
         '<testcase classname="app.Tests" name="test_skip"><skipped/></testcase>'
         '<testcase classname="app.Tests" name="test_err"><error/></testcase>'
         '</testsuite></testsuites>')


def config(case):
    return f"""
buildmaster: {{web_port: 0, worker_port: 0, state: {case.tmp}/state.sqlite}}
auth: {{user: {case.auth[0]}, password: "{case.auth[1]}"}}
slaves:
  remote: {{passwords: ["{case.passwords[0]}", "{case.passwords[1]}"], max_builds: 3}}
repositories:
  demo: {{url: "{case.repo.origin}"}}
builders:
  controls:
    repository: demo
    workers: [remote]
    steps:
      - {{name: broken, run: "echo breaking; exit 3"}}
      - {{name: skipped, run: "touch skipped-ran"}}
      - {{name: cleanup, run: "echo cleaning up", always_run: true}}
  warn:
    repository: demo
    workers: [remote]
    steps:
      - {{name: lint, run: "echo lint complains; exit 1", flunk_on_failure: false,
          warn_on_failure: true}}
      - {{name: test, run: "echo fine"}}
  silent:
    repository: demo
    workers: [remote]
    steps:
      - {{name: quiet, run: "echo going quiet; sleep 60", inactivity_timeout: 2s, grace: 1s}}
  junit:
    repository: demo
    workers: [remote]
    steps:
      - name: tests
        run: ["sh", "-c", "mkdir -p reports _trial_temp && echo 'trial says hi' > _trial_temp/test.log && printf '%s' \\"$1\\" > reports/junit.xml; exit 1",
              "sh", '{JUNIT}']
        test_results: "reports/*.xml"
        logfiles: {{test.log: _trial_temp/test.log}}
  props:
    repository: demo
    workers: [remote]
    steps:
      - {{name: version, run: "echo ' 1.2.3 '", set_property: version}}
      - name: use
        run: ["sh", "-c", "echo \\"version=[$1] forced=[$2] build=[$3] dir=$(basename $PWD)\\"",
              "sh", "${{prop:version}}", "${{prop:forced}}", "${{build_id}}"]
        workdir: "v-${{prop:version}}"
schedulers:
  force: {{type: force, builders: [controls, warn, silent, junit, props]}}
"""


def main(case):
    master = case.start_master(case.write_config(config(case)))
    case.start_workers(master, 2)
    auth = case.auth

    # Refusals first: nothing may be queued by them.
    status, answer = master.post("/api/v1/force", json.dumps(
        {"builders": ["controls", "nope"], "branch": "master"}).encode(), auth=auth)
    case.check(status == 400 and "nope" in answer.get("error", ""),
               f"an unknown builder in a multi-builder force is a 400 naming it ({status} {answer})")
    for body, what in [({"builders": []}, "an empty builder list"),
                       ({"builders": ["props"], "properties": {"a b": "x"}}, "a bad name"),
                       ({"builders": ["props"], "properties": {"n": 1}}, "a number"),
                       ({"builders": ["props"], "properties": {"n": "x" * 70000}}, "a huge value"),
                       ({"builders": ["props"], "properties": [1]}, "a list")]:
        status, answer = master.post("/api/v1/force", json.dumps(body).encode(), auth=auth)
        # A value over the 64 KiB property cap makes the body pass the API's 64 KiB body limit
        # (docs/api.md, Limits): the server refuses it with 413 before the route reads it.
        expect = 413 if what == "a huge value" else 400
        case.check(status == expect, f"{what} is a {expect} ({status} {answer})")
    status, _ = master.post("/api/v1/force", json.dumps({"builders": ["props"]}).encode())
    case.check(status in (401, 403), f"forcing needs authentication ({status})")
    case.check(master.all_requests() == [], "the refused forces queued nothing")

    forced = "hello world; $(touch pwned)"
    status, answer = master.post("/api/v1/force", json.dumps({
        "builders": ["controls", "warn", "silent", "junit", "props", "props"],
        "branch": "master", "reason": "e2e", "properties": {"forced": forced}}).encode(),
        auth=auth)
    case.check(status == 202 and len(answer.get("requests", [])) == 5,
               f"one force queued the five builders, once each ({status} {answer})")

    def finished():
        builds = [b for b in master.builds() if b["result"] not in ("running", "retry")]
        return {b["builder"]: b for b in builds} if len(builds) == 5 else None

    ended = harness.wait_for("the five builds to end", finished, 90)
    details = {name: master.get(f"/api/v1/builds/{b['id']}") for name, b in ended.items()}
    for name, build in details.items():
        print(f"{name}: {build['result']}: " +
              ", ".join(f"{s['number']} {s['name']} {s['result']}" for s in build["steps"]))

    controls = details["controls"]
    numbers = [s["number"] for s in controls["steps"]]
    case.check(controls["result"] == "failure", f"controls failed ({controls['result']})")
    case.check(numbers == [0, 1, 3],
               f"after the failure only the always_run step ran ({numbers})")
    if 3 in numbers:
        case.check("cleaning up" in master.step_log(controls["id"], 3),
                   "the always_run step's log is stored")

    warn = details["warn"]
    case.check(warn["result"] == "warnings", f"a warn_on_failure step gives warnings "
               f"({warn['result']})")
    case.check([s["result"] for s in warn["steps"]] == ["success", "failure", "success"],
               "the lint step itself failed, the build went on")

    silent = details["silent"]
    quiet = silent["steps"][-1]
    case.check(silent["result"] == "failure", f"the silent build failed ({silent['result']})")
    case.check(quiet.get("description", "").startswith("no output for 2s"),
               f"the step says it was stopped for silence ({quiet.get('description')})")
    case.check("-- no output for 2s" in master.step_log(silent["id"], 1),
               "the step's log ends with the reason")

    junit = details["junit"]
    tests = junit.get("tests", {})
    case.check(junit["result"] == "failure", f"the junit build failed ({junit['result']})")
    case.check((tests.get("passed"), tests.get("failed"), tests.get("skipped"),
                tests.get("errors")) == (2, 1, 1, 1), f"JUnit counts in the build's JSON ({tests})")
    case.check(tests.get("failed_tests") == ["app.Tests.test_bad", "app.Tests.test_err"],
               f"failed test names in the build's JSON ({tests.get('failed_tests')})")
    case.check(junit.get("summary") == "tests: 2 passed, 1 failed, 1 skipped, 1 errors",
               f"the build's summary ({junit.get('summary')})")
    case.check(junit["steps"][1].get("tests") == tests, "the step carries its own counts")
    links = junit["steps"][1].get("logfiles", {})
    case.check(links == {"test.log": f"/api/v1/builds/{junit['id']}/steps/1/logs/test.log"},
               f"the step links its log file ({links})")
    if "test.log" in links:
        case.check(master.get(links["test.log"]) == "trial says hi\n",
                   "the log file is served as the step wrote it")
    status, _ = master.get_status(f"/api/v1/builds/{junit['id']}/steps/1/logs/nope")
    case.check(status == 404, f"a log file the step does not have is a 404 ({status})")

    props = details["props"]
    case.check(props["result"] == "success", f"the props build succeeded ({props['result']})")
    case.check(props.get("properties") == {"forced": forced, "version": "1.2.3"},
               f"the build's JSON lists forced and set properties ({props.get('properties')})")
    log = master.step_log(props["id"], 2)
    expected = (f"version=[1.2.3] forced=[{forced}] build=[{props['id']}] dir=v-1.2.3")
    case.check(expected in log, f"${{prop:version}} and the forced value reached the next step "
               f"as single arguments, unexpanded by any shell ({log!r})")
    status, request = master.get_status(f"/api/v1/buildrequests/{props['request']}")
    case.check(status == 200 and request.get("properties") == {"forced": forced},
               f"the request keeps the forced properties ({status} {request})")


if __name__ == "__main__":
    harness.run(main)
