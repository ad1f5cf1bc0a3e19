#!/usr/bin/env bash
# `ci-worker run-step` as a worker runs a build step: output passes through, the exit status is
# the step's, 124 on a timeout (even when the step ignores SIGTERM), 128+N when signal N killed
# it, 127 when it cannot start, and nothing the step started outlives it.
set -uo pipefail
worker=${LIBCI_BUILD_DIR:?}/tools/ci-worker/ci-worker
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

check() { # check EXPECTED_STATUS DESCRIPTION -- ARGS...
  local expected=$1 what=$2
  shift 3
  "$worker" run-step "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [[ $got -ne $expected ]]; then
    echo "FAIL: $what: exit $got, expected $expected"
    sed 's/^/  stdout: /' "$tmp/out"
    sed 's/^/  stderr: /' "$tmp/err"
    failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
expect_text() { # expect_text FILE TEXT
  if ! grep -qF -- "$2" "$tmp/$1"; then
    echo "FAIL: $1 lacks: $2"
    sed 's/^/  /' "$tmp/$1"
    failures=$((failures + 1))
  fi
}

check 0 "a step that succeeds" -- -- sh -c 'echo out; echo err >&2'
expect_text out "out"
expect_text err "err"
check 3 "a step that fails keeps its status" -- sh -c 'exit 3'
expect_text err "ci-worker: step exited with status 3"
check 124 "a step that ignores SIGTERM is killed at its timeout" -- \
  --timeout 0.3 --grace 0.3 -- sh -c "trap '' TERM; echo started; while :; do sleep 0.1; done"
expect_text out "started"
expect_text err "it ignored SIGTERM and was killed with SIGKILL"
check 137 "a step killed by a signal exits 128+N" -- sh -c 'kill -KILL $$'
check 127 "a command that does not exist" -- libci-no-such-command
expect_text err "error: spawn 'libci-no-such-command': No such file or directory"
check 0 "--env and --cwd reach the step" -- --env GREETING=hello --cwd "$tmp" -- \
  sh -c 'echo "$GREETING from $(pwd -P)"'
expect_text out "hello from $(cd "$tmp" && pwd -P)"
check 0 "a background process of the step does not outlive it" -- \
  sh -c "sleep 1000 >/dev/null 2>&1 & echo \$! > $tmp/bg.pid"
# Gone, or a zombie that nobody has reaped yet (a container's init may not reap): not running.
state=$(ps -o stat= -p "$(cat "$tmp/bg.pid")" 2>/dev/null || true)
if [[ -n "$state" && "$state" != Z* ]]; then
  echo "FAIL: the step's background process $(cat "$tmp/bg.pid") is still running"
  failures=$((failures + 1))
fi
check 2 "no command is a usage error" --

# Issue 15: what --timeout and --grace accept. Each bad value is a usage error naming the option
# and the value, and runs nothing.
bad_seconds() { # bad_seconds OPTION VALUE MESSAGE
  check 2 "$1 $2 is refused" -- "$1" "$2" -- sh -c "touch $tmp/ran"
  expect_text err "error: $1: $2 $3"
  if [[ -e $tmp/ran ]]; then
    echo "FAIL: $1 $2 ran the step"
    failures=$((failures + 1))
    rm -f "$tmp/ran"
  fi
}
bad_seconds --grace 1e10 "is more than 31536000 seconds (365 days)"
bad_seconds --timeout nan "is not a number of seconds"
bad_seconds --timeout inf "is not a number of seconds"
bad_seconds --timeout 1e-7 "is below 1 millisecond, the resolution; 0 means none"
bad_seconds --timeout -1 "is negative"
bad_seconds --grace 0x10 "is not a number of seconds"
bad_seconds --timeout 1e400 "is more than 31536000 seconds (365 days)"
check 0 "--timeout 31536000 (the largest) and --grace 0 are accepted" -- \
  --timeout 31536000 --grace 0 -- true
# --grace 2.5: a step ignoring SIGTERM gets SIGKILL after the grace, not at once (the overflow
# of 1e10 used to kill at once).
start=$(date +%s%N)
check 124 "--grace 0.5 waits before SIGKILL" -- --timeout 0.2 --grace 0.5 -- \
  sh -c "trap '' TERM; while :; do sleep 0.05; done"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
if ((elapsed_ms < 650)); then
  echo "FAIL: --grace 0.5 killed after ${elapsed_ms}ms in all, before the grace ran out"
  failures=$((failures + 1))
fi

# Issue 15: processes that left the step's group or session do not outlive it either.
check 124 "a setsid process that ignores SIGTERM is stopped at the timeout" -- \
  --timeout 1 --grace 0.5 -- \
  sh -c "setsid sh -c \"trap '' TERM; echo \\\$\\\$ > $tmp/setsid.pid; sleep 106\" & sleep 100"
check 0 "a setsid process is stopped when the step exits" -- --grace 0.5 -- \
  sh -c "setsid sh -c 'echo \$\$ > $tmp/setsid2.pid; exec sleep 107' >/dev/null 2>&1 & sleep 0.3"
check 0 "a set -m job is stopped when the step exits" -- --grace 0.5 -- \
  sh -c "set -m; (trap '' TERM; sleep 108) >/dev/null 2>&1 & echo \$! > $tmp/setm.pid; sleep 0.2"
for file in setsid.pid setsid2.pid setm.pid; do
  pid=$(cat "$tmp/$file" 2>/dev/null || true)
  state=$([[ -n $pid ]] && ps -o stat= -p "$pid" 2>/dev/null || true)
  if [[ -z $pid ]]; then
    echo "FAIL: $file was not written"
    failures=$((failures + 1))
  elif [[ -n "$state" && "$state" != Z* ]]; then
    echo "FAIL: the process in $file ($pid) outlived its step"
    failures=$((failures + 1))
  else
    echo "ok: the process in $file is gone"
  fi
done

# Issue 15: a step cannot read the worker's secrets through /proc. Its parent is the step's
# supervisor (a fork of ci-worker), its grandparent ci-worker itself; both started with
# CI_WORKER_SECRET, CI_GIT_TOKEN and LIBCI_CONFIG in their environment.
secret_worker=worker-secret-$RANDOM$RANDOM
secret_token=git-token-$RANDOM$RANDOM
secret_config='{"auth":{"password":"config-secret-'$RANDOM$RANDOM'"}}'
peek='for pid in $PPID $(cut -d" " -f4 /proc/$PPID/stat); do
  echo "environ of $pid:"; tr "\0" "\n" < /proc/$pid/environ 2>&1 || echo "unreadable";
  echo "cmdline of $pid: $(tr "\0" " " < /proc/$pid/cmdline)"; done'
peek_as() { # peek_as DESCRIPTION [RUNNER...]: runs ci-worker with the secrets, the step peeking
  local what=$1
  shift
  CI_WORKER_SECRET=$secret_worker CI_GIT_TOKEN=$secret_token LIBCI_CONFIG=$secret_config \
    "$@" "$worker" run-step --cwd "$tmp" ${step_user:+--step-user "$step_user"} -- \
    sh -c "$peek" >"$tmp/peek" 2>&1
  local status=$?
  if [[ $status -ne 0 ]] || ! grep -q "cmdline of .*ci-worker run-step" "$tmp/peek"; then
    echo "FAIL: $what: the peeking step did not run as planned (exit $status)"
    sed 's/^/  /' "$tmp/peek"
    failures=$((failures + 1))
  elif grep -qF -e "$secret_worker" -e "$secret_token" -e "config-secret" "$tmp/peek"; then
    echo "FAIL: $what: the step read a secret of ci-worker through /proc"
    grep -F -e "$secret_worker" -e "$secret_token" -e "config-secret" "$tmp/peek" | sed 's/^/  /'
    failures=$((failures + 1))
  else
    echo "ok: $what: no secret of ci-worker readable ($(grep -acx unreadable "$tmp/peek") of 2" \
      "environ files refused)"
  fi
}
chmod 755 "$tmp"
covered=()
if [[ $(id -u) -eq 0 ]]; then
  # Root can read any environ: the scrubbed block is what keeps the secrets out.
  step_user='' peek_as "a root step (the environ block scrubbed)"
  covered+=("root")
  step_user=nobody peek_as "a step run as nobody by a root worker (--step-user)"
  grep -q "^uid=65534" <("$worker" run-step --step-user nobody -- id) ||
    { echo "FAIL: --step-user nobody did not run the step as uid 65534"; failures=$((failures + 1)); }
  covered+=("--step-user nobody")
  # An unprivileged worker and a step of the same user: non-dumpable, so /proc refuses.
  step_user='' peek_as "a step of the same unprivileged user as its worker (setpriv nobody)" \
    setpriv --reuid=65534 --regid=65534 --clear-groups
  # Both should be refused; seen once under load with one refused (the secrets absent from
  # both all the same): at least one, and the output when not both.
  refused=$(grep -acx unreadable "$tmp/peek")
  if [[ $refused -ne 2 ]]; then
    echo "note: only $refused of 2 environ files refused:"
    grep -a -v = "$tmp/peek" | sed 's/^/  /'
  fi
  if [[ $refused -lt 1 ]]; then
    echo "FAIL: a same-user step could open an environ file of its worker or supervisor"
    grep -a -v = "$tmp/peek" | sed 's/^/  /'
    failures=$((failures + 1))
  fi
  covered+=("unprivileged worker (nobody)")
  check 2 "--step-user with a user that does not exist" -- --step-user libci-no-such-user -- true
  expect_text err "step_user 'libci-no-such-user': no such user"
else
  step_user='' peek_as "a step of the same unprivileged user as its worker"
  covered+=("unprivileged worker ($(id -un))")
  check 127 "--step-user needs root" -- --step-user nobody -- true
  expect_text err "Operation not permitted"
fi
echo "covered: ${covered[*]}"

# Issue 15: a cgroup v2 per step where one can be made (run as root here; elsewhere said).
check 2 "--cgroup with a directory outside the cgroup2 file system" -- --cgroup "$tmp" -- true
expect_text err "error: --cgroup: cgroup directory $tmp: not a directory of the cgroup2 file system"
check 0 "--cgroup none: the step stays in ci-worker's cgroup" -- --cgroup none -- \
  sh -c '! grep libci-step- /proc/self/cgroup'
if "$worker" run-step -- cat /proc/self/cgroup 2>&1 | grep -q '^0::.*/libci-step-[0-9]*-[0-9]*$'; then
  check 137 "a step whose supervisor is killed leaves nothing running (its cgroup is killed)" -- \
    --cgroup auto -- sh -c "sleep 1009 >/dev/null 2>&1 </dev/null & echo \$! > $tmp/cg.pid;
      kill -9 \$PPID; sleep 100"
  pid=$(cat "$tmp/cg.pid" 2>/dev/null || true)
  state=$([[ -n $pid ]] && ps -o stat= -p "$pid" 2>/dev/null || true)
  if [[ -z $pid || ( -n $state && $state != Z* ) ]]; then
    echo "FAIL: the step's process ${pid:-?} outlived its killed supervisor"
    failures=$((failures + 1))
  fi
else
  echo "SKIP (cgroup part): no cgroup v2 for steps here ($(id -un)); the subreaper alone is tested"
fi

# --help: one usage line, ours.
"$worker" run-step --help >"$tmp/help" 2>&1
if [[ $(grep -c '^Usage:' "$tmp/help") -ne 1 ]]; then
  echo "FAIL: run-step --help shows $(grep -c '^Usage:' "$tmp/help") usage lines, not 1"
  failures=$((failures + 1))
fi
expect_text help "Usage: ci-worker run-step [OPTIONS] [--] COMMAND [ARGS...]"

[[ $failures -eq 0 ]] || { echo "$failures check(s) failed"; exit 1; }
