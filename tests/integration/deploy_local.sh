#!/usr/bin/env bash
# `ci-deploy start|status|stop` with `deploy.target: local` (examples/config.yml's), runtime
# process: the master started in the background by the start script outlives the script (it
# was stopped with the script before: run_process's supervisor ended whatever a script left
# running), is healthy, reported running by status, and stopped by stop.
set -uo pipefail
build_dir=${LIBCI_BUILD_DIR:?}
master=$build_dir/tools/ci-master/ci-master
deploy=$build_dir/tools/ci-deploy/ci-deploy
tmp=$(mktemp -d)
failures=0
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"
cleanup() {
  "$deploy" stop "$tmp/config.yml" >/dev/null 2>&1
  pkill -KILL -f "$tmp/data" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
# A binary of the build tree finds libci through this (an installed one does not need it).
export LD_LIBRARY_PATH=$build_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
cat >"$tmp/config.yml" <<YAML
buildmaster: {host: localhost, web_port: 0, worker_port: 0}
deploy: {target: local, runtime: process, binary: $master, data_dir: $tmp/data}
YAML

expect 0 "ci-deploy start on the local target" -- "$deploy" start --health-timeout 60 "$tmp/config.yml"
contains "$out" "healthy after"
sleep 1
pgrep -f "$tmp/data/current/ci-master start" >/dev/null ||
  fail "no ci-master of $tmp/data runs after start returned"
expect 0 "ci-deploy status says it runs" -- "$deploy" status "$tmp/config.yml"
contains "$out" "master:   running"
contains "$out" "health:   ok"
expect 0 "ci-deploy stop stops it" -- "$deploy" stop "$tmp/config.yml"
sleep 1
if pgrep -f "$tmp/data/current/ci-master start" >/dev/null; then
  fail "a ci-master of $tmp/data still runs after stop"
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
