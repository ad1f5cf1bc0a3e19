#!/usr/bin/env python3
"""`ci-master hash-password`: the password from stdin (not a terminal) or from a terminal
(asked twice, never echoed; two that differ are refused), never from the command line; the
hashes it prints verify with Python's own hashlib (scrypt and PBKDF2-HMAC-SHA256), and the
config accepts them."""

import base64
import hashlib
import os
import pty
import select
import subprocess
import sys
import tempfile

MASTER = os.path.join(os.environ["LIBCI_BUILD_DIR"], "tools", "ci-master", "ci-master")
failures = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        failures.append(message)


def b64(text):
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify(phc, password):
    """Verifies a PHC string with hashlib (the oracle): True, False, or None when unknown."""
    _, algorithm, params, salt, key = phc.split("$")
    salt, key = b64(salt), b64(key)
    values = dict(item.split("=") for item in params.split(","))
    if algorithm == "scrypt":
        n = 2 ** int(values["ln"])
        r, p = int(values["r"]), int(values["p"])
        derived = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p,
                                 maxmem=256 * 1024 * 1024, dklen=len(key))
    elif algorithm == "pbkdf2-sha256":
        derived = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(values["i"]),
                                      len(key))
    else:
        return None
    return derived == key


def run_stdin(text, *args):
    return subprocess.run([MASTER, "hash-password", *args], input=text, capture_output=True,
                          text=True, timeout=60)


def run_tty(lines, *args):
    """Runs hash-password on a pseudo-terminal, typing `lines`; (exit status, all output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(MASTER, [MASTER, "hash-password", *args])
    output = b""
    typed = 0
    while True:
        ready, _, _ = select.select([fd], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        # Type the next line once it is asked for.
        if typed < len(lines) and output.count(b": ") > typed:
            os.write(fd, lines[typed].encode() + b"\n")
            typed += 1
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def main():
    password = "pässwörd with spaces \u2603"
    done = run_stdin(password + "\n")
    phc = done.stdout.strip()
    check(done.returncode == 0 and phc.startswith("$scrypt$ln=15,r=8,p=1$"),
          f"stdin: a scrypt hash ({done.returncode}: {phc[:30]!r} {done.stderr!r})")
    check(verify(phc, password) is True, "hashlib.scrypt verifies it")
    check(verify(phc, password + "x") is False, "hashlib.scrypt refuses another password")
    check(password not in done.stdout + done.stderr, "the password is not printed")
    again = run_stdin(password + "\r\n").stdout.strip()
    check(again != phc and verify(again, password) is True,
          "a second hash of the same password has another salt (CRLF stripped)")

    done = run_stdin(password + "\n", "--pbkdf2")
    phc2 = done.stdout.strip()
    check(done.returncode == 0 and phc2.startswith("$pbkdf2-sha256$i=600000$"),
          f"--pbkdf2: a PBKDF2 hash ({phc2[:30]!r})")
    check(verify(phc2, password) is True, "hashlib.pbkdf2_hmac verifies it")

    for text, why in (("", "no input"), ("\n", "an empty line")):
        done = run_stdin(text)
        check(done.returncode == 1 and done.stdout == "" and "error:" in done.stderr,
              f"{why}: exit 1, nothing printed ({done.returncode} {done.stderr.strip()!r})")

    done = subprocess.run([MASTER, "hash-password", "secret-on-argv"], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    check(done.returncode == 2 and done.stdout == "",
          f"a password on the command line is a usage error ({done.returncode})")
    done = subprocess.run([MASTER, "hash-password", "--help"], capture_output=True, text=True,
                          timeout=60)
    check(done.returncode == 0 and "asks for the password twice" in done.stdout and
          "--pbkdf2" in done.stdout, "--help explains it")

    status, output = run_tty(["tty-secret-1", "tty-secret-1"])
    lines = [l for l in output.splitlines() if l.startswith("$scrypt$")]
    check(status == 0 and len(lines) == 1 and verify(lines[0].strip(), "tty-secret-1") is True,
          f"a terminal: asked twice, the hash printed ({status}: {output!r})")
    check("tty-secret-1" not in output, "the terminal never echoes the password")
    check("Password: " in output and "Again: " in output, "it asks twice")
    status, output = run_tty(["tty-secret-1", "tty-secret-2"])
    check(status == 1 and "differ" in output and "$scrypt$" not in output,
          f"two different passwords: exit 1, no hash ({status}: {output!r})")

    broken = phc.replace("ln=15", "ln=25")
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.yml")
        with open(config, "w") as out:
            out.write(f"auth:\n  users:\n    - {{user: alice, password_hash: '{phc}'}}\n"
                      f"    - {{user: bob, password_hash: '{phc2}'}}\n"
                      f"    - {{user: carol, password_hash: '{broken}'}}\n")
        done = subprocess.run([MASTER, "check-config", config], capture_output=True, text=True,
                              timeout=60)
        output = done.stdout + done.stderr
        check(done.returncode == 1 and "auth.users[2].password_hash" in output and
              "auth.users[0]" not in output and "auth.users[1]" not in output,
              f"check-config takes both hashes and names the broken one ({output!r})")

    print(f"hash-password: {len(failures)} failure(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
