#!/usr/bin/env bash
# Sets up the libci demo in DIR (default /tmp/libci-demo):
#   DIR/origin.git   a bare repository: master, feature/passing, feature/failing
#   DIR/work         a clone to push from
#   DIR/config.yml   a master config: SQLite state, two local (in-process) workers, the
#                    repository polled every 2 s, builds 5 s after a branch goes quiet, a
#                    force scheduler, and one user, `demo`, for the web UI's login and forms
#   DIR/demo-password  that user's password: random, made here (mode 0600); the config holds
#                    only its hash (ci-master hash-password). No password ships with libci:
#                    the master listens on every interface, and a login may force builds.
# Then run the master on it:  ci-master start --config DIR/config.yml
# WEB_PORT and WORKER_PORT (default 8010 and 9989; 0: any free port) go into the config.
# CI_MASTER: the ci-master that hashes the password (default: this checkout's
# ${LIBCI_BUILD_DIR:-build}/tools/ci-master/ci-master, else the one on PATH).
set -euo pipefail
dir=${1:-/tmp/libci-demo}
web_port=${WEB_PORT:-8010}
worker_port=${WORKER_PORT:-9989}
if [[ -e $dir/origin.git ]]; then
  echo "error: $dir/origin.git exists; remove $dir or pass another directory" >&2
  exit 1
fi
ci_master=${CI_MASTER:-}
if [[ -z $ci_master ]]; then
  built=$(cd "$(dirname "$0")/../.." && pwd)/${LIBCI_BUILD_DIR:-build}/tools/ci-master/ci-master
  if [[ -x $built ]]; then
    ci_master=$built
  else
    ci_master=$(command -v ci-master || true)
  fi
fi
if [[ -z $ci_master || ! -x $ci_master ]]; then
  echo "error: no ci-master to hash the demo user's password: build libci first (ninja -C build)" \
    "or set CI_MASTER" >&2
  exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export GIT_CONFIG_NOSYSTEM=1
g() { git -c user.name="Demo" -c user.email="demo@example.org" -c init.defaultBranch=master "$@"; }

g init -q --bare "$dir/origin.git"
g clone -q "$dir/origin.git" "$dir/work" 2>/dev/null
cd "$dir/work"
# The clone has an identity of its own, so that commits work for a user without one.
git config user.name "Demo"
git config user.email "demo@example.org"
g checkout -q -b master
cat >test.sh <<'TESTS'
#!/bin/sh
# The demo's test suite: it fails when a file named BROKEN is in the tree.
echo "testing $(git log -1 --format='%h %s')"
echo "merged with master: ${CI_MERGE_COMMIT:-no merge needed}"
for f in *.txt; do [ -e "$f" ] && echo "  checking $f"; done
if [ -e BROKEN ]; then
  echo "FAILED: BROKEN is in the tree"
  exit 1
fi
echo "all tests passed"
TESTS
chmod +x test.sh
echo "master" >master.txt
g add -A && g commit -qm "The demo project" && g push -q origin master

g checkout -q -b feature/passing
echo "a feature" >feature.txt
g add -A && g commit -qm "Add a feature" && g push -q -u origin feature/passing

g checkout -q -b feature/failing master
echo "oops" >BROKEN
g add -A && g commit -qm "Break the tests" && g push -q -u origin feature/failing

# master moves on, so feature branches are built as merges.
g checkout -q master
echo "master, a bit later" >master.txt
g commit -qam "Master moves on" && g push -q origin master

umask 077
# The demo user's password: 24 random characters, kept beside the config (0600).
password=$(head -c 18 /dev/urandom | base64 | tr '+/' 'xy')
printf '%s\n' "$password" >"$dir/demo-password"
password_hash=$(printf '%s\n' "$password" | "$ci_master" hash-password)
cat >"$dir/config.yml" <<CONFIG
# The libci demo: one machine, workers inside the master, one local repository.
buildmaster:
    host: localhost
    web_port: $web_port
    worker_port: $worker_port
    state: $dir/state.sqlite

# Who may log in (/login) and force, stop or cancel: demo, whose password setup.sh wrote to
# $dir/demo-password. Another user, or another password: ci-master hash-password.
auth:
    users:
        - user: demo
          password_hash: '$password_hash'

slaves:
    local:
        local: true       # workers inside the master process
        slaves: 2
        max_builds: 1

repositories:
    demo:
        url: $dir/origin.git
        poll_interval: 2s # no webhooks on a demo machine: poll the refs

builders:
    demo-tests:
        repository: demo
        workers: [local]
        merge_target: auto  # feature branches are built merged with master
        steps:
            - name: test
              run: ["/bin/sh", "./test.sh"]
              timeout: 5m

schedulers:
    branches:
        type: branch
        repository: demo
        builders: [demo-tests]
        branches: ["master", "feature/*"]
        tree_stable_timer: 5s
        max_wait: 1m
    force:                  # the web UI's force form (logged in) and POST .../force
        type: force
        builders: [demo-tests]
CONFIG
echo "demo ready in $dir"
echo "  start the master:  ci-master start --config $dir/config.yml --data-dir $dir/data"
echo "  then push:         cd $dir/work && git checkout feature/passing && echo more >>feature.txt && git commit -qam more && git push -q"
echo "  and watch:         curl -s localhost:${web_port/#0/PORT}/api/v1/builds"
echo "  or in a browser:   http://localhost:${web_port/#0/PORT}/ (log in as demo: the password is in $dir/demo-password)"
