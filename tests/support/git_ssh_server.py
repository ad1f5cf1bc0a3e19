#!/usr/bin/env python3
"""An SSH git server for tests: the real OpenSSH sshd, one `sshd -i` per connection.

    git_ssh_server.py STATE_DIR AUTHORIZED_KEYS

Listens on 127.0.0.1 on a port the kernel picks and prints "listening on 127.0.0.1:PORT", then
"host key: <type> <base64>" (for a known_hosts line). Each connection is handed to
`sshd -i` (inetd mode) with a configuration in STATE_DIR that accepts only the public keys in
AUTHORIZED_KEYS, for the current user, with no password or keyboard-interactive login. The
user's shell runs git-upload-pack as for any SSH remote. sshd's log goes to STATE_DIR/sshd.log.
"""
import os
import pwd
import shutil
import socket
import subprocess
import sys


def main():
    state, authorized = (os.path.abspath(p) for p in sys.argv[1:3])
    os.makedirs(state, exist_ok=True)
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    host_key = os.path.join(state, "host_key")
    if not os.path.exists(host_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key],
                       check=True)
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
    user = pwd.getpwuid(os.getuid()).pw_name
    config = os.path.join(state, "sshd_config")
    with open(config, "w") as out:
        out.write(f"""HostKey {host_key}
AuthorizedKeysFile {authorized}
AllowUsers {user}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile none
LogLevel VERBOSE
""")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    with open(host_key + ".pub") as key:
        kind, blob = key.read().split()[:2]
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    print(f"host key: {kind} {blob}", flush=True)
    log = open(os.path.join(state, "sshd.log"), "ab")
    children = []
    while True:
        connection, _ = listener.accept()
        children.append(subprocess.Popen([sshd, "-i", "-e", "-f", config], stdin=connection,
                                         stdout=connection, stderr=log))
        connection.close()
        children = [c for c in children if c.poll() is None]


if __name__ == "__main__":
    main()
