#!/usr/bin/env python3
"""What a build led to, on its page and in its JSON, from a real ci-master and a real worker: a
build that uploads a directory and a file (each stored as a directory NAME) and triggers another. While it runs (held at its last
step), its page and GET /api/v1/builds/ID list the triggered request, still pending (a lock of 1
holds it back), and links to its results under /results, which answer; the JSON, which the page
polls while the build runs, says "running". Once it ends, GET / shows its result at once (the
home grid's cached store read is dropped when a build ends), and the JSON the page polls has the
new result; once the triggered build ran, the page links to it with its result."""

import http.client
import json
import re

import master_harness as harness


def config(case):
    return case.remote_config() + f"""locks:
  one: {{max_count: 1}}
builders:
  package:
    repository: demo
    workers: [remote]
    locks: [one]
    steps:
      - name: make
        run: "mkdir -p out/sub && echo hello > out/readme.txt && echo x > out/sub/a && echo pkg > 'pkg 1.tgz'"
      - {{name: docs, upload: {{from: out, to: docs}}}}
      - {{name: package, upload: {{from: "pkg 1.tgz", to: "my pkg"}}}}
      - name: acceptance
        trigger: {{builders: [acceptance]}}
      - name: hold
        run: "echo holding; while [ ! -e {case.release} ]; do sleep 0.1; done; echo released"
  acceptance:
    repository: demo
    workers: [remote]
    locks: [one]
    steps:
      - {{name: test, run: "echo accepted"}}
schedulers:
  force: {{type: force, builders: [package]}}
  triggered: {{type: triggerable, builders: [acceptance]}}
"""


def page(master, path):
    connection = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read().decode()


def grid_cell(html, build):
    """The result the home grid shows in the cell that links to build `build`, or None."""
    found = re.search(r'<a href="/builds/' + str(build) +
                      r'"><span class="result (\w+)">', html)
    return found.group(1) if found else None


def main(case):
    master = case.start_master(case.write_config(config(case)))
    case.start_workers(master, 1)
    status, answer = master.post("/api/v1/builders/package/force", b"{}", auth=case.auth)
    case.check(status == 202, f"forced package ({status} {answer})")
    request = answer["requests"][0]
    build = harness.wait_for("the package build", lambda: next(
        (b for b in master.builds() if b["request"] == request), None))
    bid = build["id"]
    try:
        harness.wait_for("the hold step to run", lambda: "holding" in page(
            master, f"/api/v1/builds/{bid}/steps/5/log")[1])
    except AssertionError:
        print(json.dumps(master.get(f"/api/v1/builds/{bid}"), indent=1))
        raise

    # While it runs: the JSON and the page list the triggered request (pending) and the results.
    js = master.get(f"/api/v1/builds/{bid}")
    case.check(js["result"] == "running", f"the JSON says running ({js['result']})")
    triggered = js.get("triggered", [])
    case.check(len(triggered) == 1 and triggered[0]["builder"] == "acceptance" and
               triggered[0]["step"] == 4 and triggered[0]["state"] == "pending" and
               "build" not in triggered[0],
               f"the JSON lists the triggered request, pending, without a build ({triggered})")
    results = f"/results/package/master/{bid}/"
    case.check(js.get("results") == results, f"the JSON has the results URL ({js.get('results')})")
    artifacts = js.get("artifacts", [])
    case.check([(a["name"], a["directory"], a["url"]) for a in artifacts] ==
               [("docs", True, results + "docs/"), ("my pkg", True, results + "my%20pkg/")],
               f"the JSON lists the uploads, each a directory ({artifacts})")
    status, body = page(master, results + "docs/")
    case.check(status == 200 and "readme.txt" in body and "sub/" in body,
               f"the uploaded directory's link answers with its listing ({status})")
    status, body = page(master, results + "my%20pkg/")
    case.check(status == 200 and "pkg 1.tgz" in body,
               f"the uploaded file's directory answers with its listing ({status})")
    status, body = page(master, results + "my%20pkg/pkg%201.tgz")
    case.check(status == 200 and body == "pkg\n", f"the uploaded file is served ({body!r})")

    status, html = page(master, f"/builds/{bid}")
    case.check(status == 200, f"the running build's page answers ({status})")
    case.check("<h2>Triggered builds</h2>" in html and
               f"acceptance <span class=\"muted\">(request {triggered[0]['request']}, pending)"
               in html, "the page lists the triggered request, pending")
    for artifact in artifacts:
        name = artifact["name"] + ("/" if artifact["directory"] else "")
        case.check(f'<a href="{artifact["url"]}"><bdi>{name}</bdi></a>' in html,
                   f"the page links to the upload {name}")
    case.check(f'<a href="{results}">{results}</a>' in html, "the page links to the results")
    case.check(f'id="build-head" data-build="{bid}" data-steps="6" data-triggered="1" '
               f'data-artifacts="2"' in html,
               "the page's header carries what the live poll compares (steps, triggered, results)")
    case.check('<span class="result running" data-build-result="1">running</span>' in html,
               "the header says running")
    counts = dict(re.findall(r'data-step-lines="(\d+)" data-count="(\d+)"', html))
    case.check(len(counts) == 6 and int(counts["5"]) >= 2,
               f"each step's line count carries its number for the live log ({counts})")

    status, home = page(master, "/")
    case.check(grid_cell(home, bid) == "running", "the home grid shows the build running")
    page(master, "/")  # from the cache now

    # The build ends: the very next GET / shows it (never the cached grid of before).
    open(case.release, "w").close()
    harness.wait_for("the package build to end",
                     lambda: master.get(f"/api/v1/builds/{bid}")["result"] != "running")
    status, home = page(master, "/")
    case.check(grid_cell(home, bid) == "success",
               f"the home grid shows the end at once ({grid_cell(home, bid)})")
    grid = master.get("/api/v1/grid")
    cells = [c for b in grid["builders"] for c in b["cells"] if c["build"] == bid]
    case.check(cells and cells[0]["result"] == "success", f"so does /api/v1/grid ({cells})")

    # The triggered build runs once the lock is free: the page links to it with its result.
    done = harness.wait_for("the triggered build", lambda: next(
        (t for t in master.get(f"/api/v1/builds/{bid}")["triggered"]
         if t.get("result") not in (None, "running")), None))
    case.check(done["result"] == "success" and done["url"] == f"/builds/{done['build']}" and
               done["state"] == "completed",
               f"the JSON links to the triggered build and its result ({done})")
    status, html = page(master, f"/builds/{bid}")
    case.check(f'<a href="/builds/{done["build"]}">acceptance, build {done["build"]}</a> '
               f'<span class="result success" data-triggered-result="{done["build"]}">'
               f'success</span>' in html,
               "the page links to the triggered build with its result")
    case.check('<span class="result success" data-build-result="1">success</span>' in html,
               "the finished page's header says success")
    status, html = page(master, f"/builds/{done['build']}")
    case.check(status == 200 and "<h2>Triggered builds</h2>" not in html and
               "<h2>Results</h2>" not in html,
               "a build that triggered and uploaded nothing shows neither section")
    js = master.get(f"/api/v1/builds/{done['build']}")
    case.check(js["triggered"] == [] and "results" not in js and "artifacts" not in js,
               "nor does its JSON (an empty triggered list, no results)")


if __name__ == "__main__":
    harness.run(main)
