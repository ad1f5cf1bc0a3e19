#!/usr/bin/env bash
# Installs what is missing, builds libci, and runs the main job: a master on the demo (a local
# repository with master and feature branches, two workers inside the master, SQLite state),
# in the foreground until Ctrl-C. Idempotent: a second run reuses the build directory and
# recreates the demo.
#   scripts/quickstart.sh [DEMO_DIR]     (default /tmp/libci-demo)
# WEB_PORT and WORKER_PORT (default 8010 and 9989) choose the master's ports; LIBCI_JOBS the
# compilers run at once (default: the cores, at most one per 1.5 GiB of available memory).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

build_dir=${LIBCI_BUILD_DIR:-build}
demo=${1:-/tmp/libci-demo}
ensure_packages "${LIBCI_BUILD_PACKAGES[@]}" git curl
configure_build "$build_dir"
compile_build "$build_dir"
master=$(pwd)/$build_dir/tools/ci-master/ci-master

log "checking examples/config.yml"
"$master" check-config examples/config.yml

# The demo is ours to recreate only when setup.sh made it (it leaves config.yml and work/).
if [[ -e $demo ]]; then
  if [[ -f $demo/config.yml && -d $demo/work && -d $demo/origin.git ]]; then
    rm -rf "$demo"
  else
    echo "error: $demo exists and is not a libci demo; pass another directory" >&2
    exit 1
  fi
fi
log "setting up the demo in $demo"
CI_MASTER=$master examples/demo/setup.sh "$demo" >/dev/null
# The master starts in the background only until its ports are known (WEB_PORT=0 picks a free
# one), then this script waits on it; Ctrl-C or SIGTERM is passed on as SIGTERM (a background
# process of a script ignores SIGINT).
ports=$demo/ports.json
"$master" start --config "$demo/config.yml" --data-dir "$demo/data" --ports-file "$ports" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
for _ in $(seq 300); do
  [[ -s $ports ]] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -s $ports ]]; then
  wait "$pid" || true
  echo "error: the master did not start (see its output above)" >&2
  exit 1
fi
port=$(sed -n 's/.*"web_port": *\([0-9]*\).*/\1/p' "$ports")
cat <<MSG

The master runs on the demo (web port $port); Ctrl-C (or SIGTERM) stops it.
In another terminal, push to a branch and watch the build (5 s after the push goes quiet):
  cd $demo/work
  git checkout feature/passing && echo more >>feature.txt && git commit -qam more && git push -q
  git checkout feature/failing && echo more >>BROKEN && git commit -qam more && git push -q
  curl -s localhost:$port/api/v1/builds                  # builds, newest first, with their branch
  curl -s localhost:$port/api/v1/builds/ID               # one build (an id from the list) and its steps
  curl -s localhost:$port/api/v1/builds/ID/steps/1/log   # the test step's log
  curl -sN 'localhost:$port/api/v1/builds/ID/steps/1/log?follow=1'   # followed live
Or open http://localhost:$port/ in a browser; log in as demo (the password is in
$demo/demo-password) to force, stop and cancel builds.

MSG
# Until it stops (wait returns early when a signal is trapped: wait again).
status=0
while kill -0 "$pid" 2>/dev/null; do
  wait "$pid" && status=0 || status=$?
done
exit "$status"
