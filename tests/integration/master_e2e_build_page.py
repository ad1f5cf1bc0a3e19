#!/usr/bin/env python3
"""The build page (GET /builds/ID) and its live log, from a real ci-master and a real worker:
a step that prints ANSI colours and a script tag shows them as colour classes and as text; the
page of a running step carries the cursor its live log follows from; the HTML Server-Sent
Events from there bring the rest of the step to its `end` event, without a line the page had;
a reconnect with Last-Event-ID goes on after that event, without a line twice; a finished
failed build opens at its failed step; a build with a long log (LIBCI_UI_BIG_MB, default 8 MB)
gets a page of bounded size, with a link to earlier lines that answers. Prints the size and
the server time (Server-Timing) of that page."""

import http.client
import json
import os
import re
import time

import master_harness as harness

BIG_MB = int(os.environ.get("LIBCI_UI_BIG_MB", "8"))


def config(case):
    release = case.release
    return case.remote_config() + f"""builders:
  ui:
    repository: demo
    workers: [remote]
    steps:
      - name: colours
        run: |
          printf '\\033[1;31mred alert\\033[0m <script>alert(1)</script>\\n'
          i=1; while [ $i -le 30 ]; do printf 'line %s \\033[32mok\\033[0m\\n' $i; i=$((i+1)); done
          echo waiting
          while [ ! -e "{release}" ]; do sleep 0.1; done
          i=1; while [ $i -le 10 ]; do echo "after release $i"; i=$((i+1)); done
          sleep 0.5
          i=11; while [ $i -le 20 ]; do echo "after release $i"; i=$((i+1)); done
          printf 'progress 10%%\\rprogress 100%%\\n'
          exit 1
  big:
    repository: demo
    workers: [remote]
    steps:
      - name: big
        run: |
          yes "$(printf 'a line of a long log, \\033[34mblue\\033[0m and plain text after it.....')" | head -c {BIG_MB * 1024 * 1024}
schedulers:
  force: {{type: force, builders: [ui, big]}}
"""


def sse_events(response, until_end=True):
    """Reads Server-Sent Events from `response` until an `end` event (or the body ends):
    a list of dicts with id, event and data."""
    events = []
    current = {"data": []}
    while True:
        line = response.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line == "":
            if current.get("event"):
                current["data"] = "\n".join(current["data"])
                events.append(current)
                if until_end and current["event"] == "end":
                    break
            current = {"data": []}
            continue
        field, _, value = line.partition(": ")
        if field == "data":
            current["data"].append(value)
        else:
            current[field] = value
    return events


def line_numbers(events):
    numbers = []
    for event in events:
        if event["event"] == "lines":
            data = event["data"].split("\n")
            first = int(data[0])
            numbers += range(first, first + len(data) - 1)
    return numbers


def page(master, path):
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.monotonic() - started
    return response.status, response.getheader("Server-Timing", ""), body.decode(), elapsed


def force(case, master, builder):
    status, answer = master.post(f"/api/v1/builders/{builder}/force", b"{}", auth=case.auth)
    case.check(status == 202, f"forced {builder} ({status} {answer})")
    request = answer["requests"][0]
    return harness.wait_for(f"the build of {builder}", lambda: next(
        (b for b in master.builds() if b["request"] == request), None))


def main(case):
    master = case.start_master(case.write_config(config(case)))
    case.start_workers(master, 1)

    build = force(case, master, "ui")
    log = f"/api/v1/builds/{build['id']}/steps/1/log"
    harness.wait_for("the step to wait", lambda: page(master, log)[0] == 200 and
                     "waiting" in page(master, log)[2])
    status, _, html, _ = page(master, f"/builds/{build['id']}")
    case.check(status == 200, f"the build page of a running build answers 200 ({status})")
    case.check("&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html,
               "a script tag in the log is text on the page")
    case.check('<span class="fg1 bold">red alert</span>' in html,
               "ANSI bold red is a span with its colour classes")
    case.check('id="step-1-2"' in html and 'href="#step-1-2"' in html,
               "log lines have anchors step-N-L and links to them")
    case.check("\x1b" not in html, "no escape character reaches the page")
    case.check("<dt>Branch tip</dt>" in html and "<dt>Merge commit</dt>" not in html,
               "the page shows the branch tip, and no merge commit where there is none")
    found = re.search(r'data-events="([^"]+)" data-from="([^"]+)"', html)
    case.check(found is not None, "the running step's log carries its events URL and cursor")
    events_url = found.group(1).replace("&amp;", "&")
    cursor = found.group(2)
    shown = [int(n) for n in re.findall(r'id="step-1-(\d+)"', html)]
    case.check(shown and shown[-1] >= 31, f"the page shows the log so far (to line {shown[-1]})")

    # Live from the page's cursor: the rest of the step, nothing the page had.
    connection = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    connection.request("GET", f"{events_url}&from={cursor}")
    response = connection.getresponse()
    case.check(response.getheader("Content-Type", "").startswith("text/event-stream"),
               "the live log is text/event-stream")
    open(case.release, "w").close()
    live = sse_events(response)
    numbers = line_numbers(live)
    case.check(live and live[-1]["event"] == "end" and live[-1]["data"] == "failure",
               f"the live log ends with the step's result ({live[-1] if live else None})")
    case.check(numbers and numbers[0] == shown[-1] + 1 and
               numbers == list(range(numbers[0], numbers[0] + len(numbers))),
               f"the live lines go on after the page's, once each ({numbers[:3]}...)")
    text = "\n".join(e["data"] for e in live if e["event"] == "lines")
    case.check("after release 20" in text and "progress 100%" in text and
               "progress 10%" not in text, "the live lines carry the rest, as a terminal shows it")

    # Reconnecting with the id of the first lines event: what came after it, once.
    with_ids = [e for e in live if e["event"] == "lines" and "id" in e]
    case.check(len(with_ids) >= 1, "lines events carry ids")
    again = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    again.request("GET", events_url, headers={"Last-Event-ID": with_ids[0]["id"]})
    resumed = sse_events(again.getresponse())
    first_numbers = line_numbers([with_ids[0]])
    resumed_numbers = line_numbers(resumed)
    after_first = [n for n in numbers if n > first_numbers[-1]]
    case.check(len(with_ids) >= 2 and resumed_numbers == after_first and resumed and
               resumed[-1]["event"] == "end",
               f"Last-Event-ID resumes after that event without duplicates "
               f"({first_numbers[-1]} then {resumed_numbers[:2]}...{resumed_numbers[-1:]})")
    bad = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    bad.request("GET", events_url, headers={"Last-Event-ID": "1.2.x"})
    case.check(bad.getresponse().status == 400, "a Last-Event-ID that is no cursor is a 400")

    done = harness.wait_for("the ui build to end", lambda: next(
        (b for b in master.builds() if b["id"] == build["id"] and b["result"] != "running"), None))
    case.check(done["result"] == "failure", f"the build failed ({done['result']})")
    status, _, html, _ = page(master, f"/builds/{build['id']}")
    case.check('<details open="open" data-focus="1">' in html,
               "a failed build opens at its failed step")
    case.check("data-events" not in html, "a finished build's page does not follow anything")
    case.check('<span class="result failure" data-build-result="1">failure</span>' in html,
               "the page shows the build's result")
    status, _, html, _ = page(master, f"/builds/{build['id']}?step=99&from=5")
    case.check(status == 200 and '<details open="open" data-focus="1">' in html,
               "a step the build does not have: the page opens as if none was asked")
    status, _, _, _ = page(master, f"/builds/{build['id']}?step=x")
    case.check(status == 400, f"a step that is not a number is a 400 page ({status})")
    status, _, _, _ = page(master, "/builds/999999")
    case.check(status == 404, f"a build that does not exist is a 404 page ({status})")

    # A long log: the page shows its end and links to the rest.
    big = force(case, master, "big")
    harness.wait_for("the big build to end", lambda: next(
        (b for b in master.builds() if b["id"] == big["id"] and b["result"] != "running"),
        None), timeout=120)
    status, timing, html, elapsed = page(master, f"/builds/{big['id']}")
    size = len(html.encode())
    print(f"build page of a {BIG_MB} MB log: {size} bytes, server {timing}, "
          f"client {elapsed * 1000:.0f} ms", flush=True)
    case.check(status == 200, f"the long log's page answers 200 ({status})")
    case.check(size < 1_500_000, f"the page of a {BIG_MB} MB log stays small ({size} bytes)")
    # Step 0 (the checkout), then step 1: "N lines" (with the count log.js keeps up to date).
    totals = re.findall(r'data-count="\d+">(\d+) lines</span>, ', html)
    lines = int(totals[-1]) if totals else 0
    expected = -(-BIG_MB * 1024 * 1024 // 65)  # 65 bytes per line of `yes`, the last cut
    # The log's own lines: "$ command" first, "-- exited with status 0" last.
    case.check(lines == expected + 2, f"the page counts the whole log ({lines} lines)")
    earlier = re.search(r'href="(/builds/\d+\?step=1&amp;from=(\d+)#step-1)"', html)
    case.check(earlier is not None, "the page links to earlier lines")
    if earlier:
        # What a browser asks: the path without its #fragment.
        status, _, part, _ = page(master, earlier.group(1).replace("&amp;", "&").split("#")[0])
        case.check(status == 200 and f'id="step-1-{earlier.group(2)}"' in part,
                   f"the earlier lines answer, from line {earlier.group(2)}")
    json_build = master.get(f"/api/v1/builds/{big['id']}")
    if json_build["steps"][-1]["result"] != "success":
        print(master.get(f"/api/v1/builds/{big['id']}/steps/1/log")[:2000])
    case.check(json_build["steps"][1]["result"] == "success", "the big build's step succeeded")


if __name__ == "__main__":
    harness.run(main)
