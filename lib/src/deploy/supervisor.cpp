// The process runtime's supervisor: a POSIX sh script that ci-deploy installs on the target as
// DATA_DIR/bin/libci-supervise. A script rather than a program, so that it runs on any host
// with /bin/sh (no libraries to match) and can be read there by whoever operates the host.

#include <ci/deploy/plan.h>

namespace ci::deploy {

std::string_view supervisor_script() {
    return R"SH(#!/bin/sh
# libci-supervise DATA_DIR [SHUTDOWN_GRACE]: runs DATA_DIR/current/ci-master (installed by
# ci-deploy, runtime "process") and starts it again when it exits unasked.
#   DATA_DIR/run/supervisor.pid, DATA_DIR/run/master.pid   pidfiles (removed at exit)
#   DATA_DIR/run/ports.json                                the ports the master bound
#   DATA_DIR/log/master.log                                its output (master.log.1 past 50 MB)
#   DATA_DIR/state                                         its working directory (state.sqlite)
# SIGTERM or SIGINT: SIGTERM to the master (it lets running builds finish for SHUTDOWN_GRACE
# seconds), wait for it, exit. A master that keeps exiting is restarted after 1 s, doubling up
# to 60 s; the wait starts again at 1 s after a run of a minute or more.
set -u
dir=$1
grace=${2:-60}
run=$dir/run
log=$dir/log/master.log
mkdir -p "$run" "$dir/log" "$dir/state" || exit 1
echo $$ >"$run/supervisor.pid"
child=
pause=
stopping=
stop() {
  stopping=1
  [ -n "$child" ] && kill -TERM "$child" 2>/dev/null
  [ -n "$pause" ] && kill -TERM "$pause" 2>/dev/null
}
trap stop TERM INT
note() {
  printf '%s libci-supervise: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$log"
}
delay=1
while [ -z "$stopping" ]; do
  if [ -f "$log" ] && [ "$(wc -c <"$log")" -gt 52428800 ]; then
    mv -f "$log" "$log.1"
  fi
  rm -f "$run/ports.json"
  started=$(date +%s)
  (cd "$dir/state" && exec "$dir/current/ci-master" start --config "$dir/config.json" \
    --data-dir "$dir/state" --ports-file "$run/ports.json" --shutdown-grace "$grace") \
    >>"$log" 2>&1 </dev/null &
  child=$!
  echo "$child" >"$run/master.pid"
  note "started $(head -n 1 "$dir/current/version" 2>/dev/null) (pid $child)"
  status=0
  wait "$child" || status=$?
  # A signal we trap interrupts wait while the master is still stopping: wait for it.
  while kill -0 "$child" 2>/dev/null; do
    status=0
    wait "$child" || status=$?
  done
  child=
  rm -f "$run/master.pid"
  if [ -n "$stopping" ]; then
    note "stopped (ci-master exited with status $status)"
    break
  fi
  if [ $(($(date +%s) - started)) -ge 60 ]; then
    delay=1
  fi
  note "ci-master exited with status $status; starting it again in $delay s"
  sleep "$delay" &
  pause=$!
  wait "$pause" 2>/dev/null
  pause=
  delay=$((delay * 2))
  [ "$delay" -gt 60 ] && delay=60
done
rm -f "$run/supervisor.pid" "$run/ports.json"
)SH";
}

} // namespace ci::deploy
