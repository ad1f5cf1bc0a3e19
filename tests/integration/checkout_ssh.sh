#!/usr/bin/env bash
# `ci-worker checkout` over SSH against the real OpenSSH sshd on 127.0.0.1 (port chosen by the
# kernel): a key file (CI_GIT_SSH_KEY) works, the agent works when no key file is given, a key
# the server does not accept and a host key missing from known_hosts are errors (exit 2) that
# say so. HOME is a temporary directory holding .ssh/known_hosts, as on a worker.
# Needs sshd (Debian: openssh-server); without it the test is skipped (exit 77), loudly.
set -uo pipefail
worker=${LIBCI_BUILD_DIR:?}/tools/ci-worker/ci-worker
server_script=${LIBCI_SOURCE_DIR:?}/tests/support/git_ssh_server.py
sshd=$(command -v sshd || echo /usr/sbin/sshd)
if [[ ! -x $sshd ]]; then
  echo "SKIP: sshd not found (Debian package openssh-server): SSH checkout not tested"
  exit 77
fi
for tool in ssh-keygen ssh-agent ssh-add; do
  command -v $tool >/dev/null || { echo "SKIP: $tool not found (openssh-client)"; exit 77; }
done
tmp=$(mktemp -d)
server_pid=
agent_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
  [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=Dev GIT_AUTHOR_EMAIL=dev@example.org GIT_COMMITTER_NAME=Dev
export GIT_COMMITTER_EMAIL=dev@example.org
unset SSH_AUTH_SOCK CI_GIT_SSH_KEY CI_GIT_TOKEN
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

git init -q -b master "$tmp/src"
cd "$tmp/src" || exit 1
printf 'a1\n' >a.txt && git add -A && git commit -qm base
git checkout -qb feature && printf 'b\n' >b.txt && git add -A && git commit -qm feature
git checkout -q master && printf 'a2\n' >a.txt && git commit -qam master
git clone -q --bare "$tmp/src" "$tmp/origin.git"
cd "$tmp" || exit 1

ssh-keygen -q -t ed25519 -N '' -C ci-test -f "$tmp/worker_key"
ssh-keygen -q -t ed25519 -N '' -C stranger -f "$tmp/stranger_key"
cp "$tmp/worker_key.pub" "$tmp/authorized_keys"

python3 "$server_script" "$tmp/sshd" "$tmp/authorized_keys" >"$tmp/server.out" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  grep -q '^host key: ' "$tmp/server.out" && break
  sleep 0.1
done
port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/server.out")
host_key=$(sed -n 's/^host key: //p' "$tmp/server.out")
[[ -n $port && -n $host_key ]] || { echo "FAIL: ssh server did not start: $(cat "$tmp/server.out")"; exit 1; }
mkdir -p "$tmp/home/.ssh" "$tmp/stranger_home/.ssh"
echo "[127.0.0.1]:$port $host_key" >"$tmp/home/.ssh/known_hosts"
: >"$tmp/stranger_home/.ssh/known_hosts"
url="ssh://$(id -un)@127.0.0.1:$port$tmp/origin.git"
feature=$(git -C "$tmp/origin.git" rev-parse feature)

# A key file.
out=$(HOME=$tmp/home CI_GIT_SSH_KEY=$tmp/worker_key "$worker" checkout "$url" "$tmp/w1" \
  --branch feature --cache "$tmp/cache1" --json 2>"$tmp/err1")
status=$?
[[ $status -eq 0 ]] || fail "key file: exit $status: $(cat "$tmp/err1") $(tail -5 "$tmp/sshd/sshd.log")"
tip=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["branch_tip"])' <<<"$out")
[[ "$tip" == "$feature" ]] || fail "key file: wrong branch tip: $out"
[[ -f $tmp/w1/b.txt ]] || fail "key file: b.txt not checked out"
grep -q "Accepted publickey for $(id -un)" "$tmp/sshd/sshd.log" || fail "sshd did not log a key login"
echo "ok: SSH with a key file"

# The agent, when no key file is given.
eval "$(ssh-agent -s -a "$tmp/agent.sock")" >/dev/null
agent_pid=$SSH_AGENT_PID
ssh-add -q "$tmp/worker_key" 2>/dev/null || fail "ssh-add failed"
HOME=$tmp/home "$worker" checkout "$url" "$tmp/w2" --branch feature --cache "$tmp/cache2" \
  >/dev/null 2>"$tmp/err2"
status=$?
[[ $status -eq 0 ]] || fail "agent: exit $status: $(cat "$tmp/err2")"
[[ -f $tmp/w2/b.txt ]] || fail "agent: b.txt not checked out"
echo "ok: SSH through the agent"
kill "$agent_pid" && agent_pid=
unset SSH_AUTH_SOCK SSH_AGENT_PID

# A key the server does not accept.
HOME=$tmp/home CI_GIT_SSH_KEY=$tmp/stranger_key "$worker" checkout "$url" "$tmp/w3" \
  --branch feature --cache "$tmp/cache3" >/dev/null 2>"$tmp/err3"
status=$?
[[ $status -eq 2 ]] || fail "refused key: exit $status, expected 2"
grep -q "authentication failed: the server refused the SSH key $tmp/stranger_key" "$tmp/err3" || fail "refused key: $(cat "$tmp/err3")"
echo "ok: a refused key is an error: $(head -1 "$tmp/err3")"

# A server whose host key is not in known_hosts.
HOME=$tmp/stranger_home CI_GIT_SSH_KEY=$tmp/worker_key "$worker" checkout "$url" "$tmp/w4" \
  --branch feature --cache "$tmp/cache4" >/dev/null 2>"$tmp/err4"
status=$?
[[ $status -eq 2 ]] || fail "unknown host key: exit $status, expected 2"
grep -qi "hostkey\|host key" "$tmp/err4" || fail "unknown host key: $(cat "$tmp/err4")"
echo "ok: an unknown host key is refused: $(head -1 "$tmp/err4")"

[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
