#!/usr/bin/env python3
"""A latent (EC2) worker logs in once with a one-time token (the same token again is refused),
and after the master dropped its silent connection logs in again with the secret its welcome
gave it. No log shows the token."""

import signal

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    status, issued = master.post("/api/v1/workers/tokens", b'{"class": "latent"}',
                                 auth=case.auth)
    if not case.check(status == 201 and issued["name"].startswith("latent/") and
                      len(issued["token"]) == 64,
                      f"a one-time token for a latent worker: {status} {issued.get('name')}"):
        return
    name, token = issued["name"], issued["token"]
    case.secrets.append(token)
    latent = case.start_worker(master, 5, name=name, token=token)
    harness.wait_for("the latent worker to log in with its token",
                     lambda: master.connected(name), 30)
    again = case.start_worker(master, 6, name=name, token=token)
    code = again.process.wait(timeout=30)
    case.check(code == 1 and "refused" in again.log(),
               f"the same token a second time is refused (exit {code})")
    # Silent past three heartbeats, it is dropped; awake, it logs in again with the secret its
    # welcome gave it (the token is spent).
    latent.send_signal(signal.SIGSTOP)
    harness.wait_for("the master to drop the silent worker", lambda: not master.connected(name),
                     30)
    latent.send_signal(signal.SIGCONT)
    harness.wait_for("the latent worker to log in again", lambda: master.connected(name), 30)
    logins = latent.log().count("connected to the master")
    case.check(logins == 2, f"after being dropped, the latent worker logged in again with its "
               f"next secret ({logins} logins)")


if __name__ == "__main__":
    harness.run(main)
