#!/usr/bin/env python3
"""A running step's log followed live from a real ci-master: chunked text (?follow=1) and
Server-Sent Events, each until the step ends, carrying output written before and after the
client connected."""

import http.client

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    case.start_workers(master, 1)
    tip, build = case.slow_build(master)

    path = f"/api/v1/builds/{build['id']}/steps/1"
    plain = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    plain.request("GET", path + "/log?follow=1")
    plain_response = plain.getresponse()
    events = http.client.HTTPConnection("127.0.0.1", master.web, timeout=60)
    events.request("GET", path + "/events")
    events_response = events.getresponse()
    case.check(plain_response.getheader("Transfer-Encoding") == "chunked",
               "a running step's log is sent chunked")
    case.check(events_response.getheader("Content-Type", "").startswith("text/event-stream"),
               f"events are text/event-stream ({events_response.getheader('Content-Type')})")
    # Only now does the step go on to print "all tests passed" and end.
    open(case.release, "w").close()
    followed = plain_response.read().decode()
    sse = events_response.read().decode()
    case.check("waiting" in followed and "all tests passed" in followed,
               "following the log gives the output up to the step's end")
    case.check("event: log" in sse and "data: waiting" in sse and
               "data: all tests passed" in sse and "event: end\ndata: success" in sse,
               "Server-Sent Events carry the log and the step's result")
    done = harness.wait_for("the build to end", lambda: master.finished_build(tip))
    case.check(done["result"] == "success", f"the followed build succeeded ({done['result']})")


if __name__ == "__main__":
    harness.run(main)
