#!/usr/bin/env python3
"""SIGTERM: the master stops taking work but lets the running build finish, then exits 0; the
build's success is stored."""

import signal

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    case.start_workers(master, 1)
    _, running = case.slow_build(master)

    master.send_signal(signal.SIGTERM)
    harness.wait_for("the master to wait for the running build", lambda: any(
        "waiting up to 30 s for 1 running build(s)" in text
        for text in case.logs().values()), 30)
    # It accepts no new connection meanwhile: the build's state is read after the exit.
    case.check(master.process.poll() is None, "on SIGTERM the master waits for the running build")
    open(case.release, "w").close()
    code = master.process.wait(timeout=60)
    case.check(code == 0, f"then exits 0 ({code})")
    master.start()
    build = master.get(f"/api/v1/builds/{running['id']}")
    case.check(build["result"] == "success",
               f"the build that was running at SIGTERM finished and was stored ({build['result']})")


if __name__ == "__main__":
    harness.run(main)
