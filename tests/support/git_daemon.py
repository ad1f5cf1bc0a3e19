#!/usr/bin/env python3
"""A real `git daemon` on 127.0.0.1 at a port the kernel picks (port 0).

    git_daemon.py BASE [MODE_FILE]

Listens, prints "listening on 127.0.0.1:PORT", and for each connection runs
`git daemon --inetd --export-all --base-path=BASE` on it (git daemon itself cannot report the
port it got for --port=0). What it does with a connection is read from MODE_FILE when it is
accepted: `serve` (also when the file is absent), `hang` (never answer: a server that stopped
responding) or `hangup` (close it at once: a server that drops connections). Stopping this
process makes the port refuse connections.
"""
import socket
import subprocess
import sys


def main():
    base = sys.argv[1]
    mode_file = sys.argv[2] if len(sys.argv) > 2 else None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    held = []
    while True:
        connection, _ = listener.accept()
        mode = "serve"
        try:
            with open(mode_file or "/nonexistent", encoding="ascii") as f:
                mode = f.read().strip() or "serve"
        except OSError:
            pass
        if mode == "hang":
            held.append(connection)
            continue
        if mode == "hangup":
            connection.close()
            continue
        subprocess.Popen(["git", "daemon", "--inetd", "--export-all", f"--base-path={base}", base],
                         stdin=connection.fileno(), stdout=connection.fileno(),
                         stderr=subprocess.DEVNULL)
        connection.close()


if __name__ == "__main__":
    main()
