#!/usr/bin/env bash
# The README's main job, as a user runs it: examples/demo/setup.sh, then ci-master on the demo
# config (ports 0 instead of 8010/9989). Pushing to feature/passing and feature/failing after
# the master started gives, after the tree-stable wait, a success built as a merge with master
# and a failure whose log says why.
set -uo pipefail
master=${LIBCI_BUILD_DIR:?}/tools/ci-master/ci-master
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

WEB_PORT=0 WORKER_PORT=0 CI_MASTER=$master "$LIBCI_SOURCE_DIR/examples/demo/setup.sh" "$tmp/demo" \
  >/dev/null || exit 1
"$master" check-config "$tmp/demo/config.yml" >/dev/null || fail "the demo config does not check"
# The demo's user: a random password made by setup.sh (0600 beside the config), only its hash in
# the config.
password=$(cat "$tmp/demo/demo-password")
[[ ${#password} -ge 20 && $(stat -c %a "$tmp/demo/demo-password") == 600 ]] ||
  fail "demo-password: a random password, mode 0600 (${#password} characters)"
grep -qF "password_hash: '\$scrypt\$ln=" "$tmp/demo/config.yml" || fail "the config has no password hash"
grep -qF -- "$password" "$tmp/demo/config.yml" && fail "the plain password is in the config"
"$master" start --config "$tmp/demo/config.yml" --data-dir "$tmp/demo/data" --listen 127.0.0.1 \
  --ports-file "$tmp/ports.json" >"$tmp/master.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -s $tmp/ports.json ]] && break; sleep 0.1; done
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["web_port"])' "$tmp/ports.json") ||
  { cat "$tmp/master.log"; exit 1; }
api=http://127.0.0.1:$port/api/v1
sleep 3 # the poller's first reading is the baseline

cd "$tmp/demo/work" || exit 1
g() { git -c user.name=Dev -c user.email=dev@example.org "$@"; }
g checkout -q feature/passing && echo more >>feature.txt && g commit -qam more && g push -q origin feature/passing
g checkout -q feature/failing && echo more >>BROKEN && g commit -qam more && g push -q origin feature/failing

# The README's web UI: log in as demo with the password setup.sh wrote; force (the demo has a
# force scheduler); a wrong password is refused.
# (The password through curl's config on stdin: never on the command line.)
status=$(curl -s -o /dev/null -w '%{http_code}' --data-urlencode user=demo -K - \
  -c "$tmp/cookies" "http://127.0.0.1:$port/login" <<<"data-urlencode = \"password=$password\"")
{ [[ $status == 303 ]] && grep -q libci_session "$tmp/cookies"; } || fail "login as demo: $status"
status=$(curl -s -o /dev/null -w '%{http_code}' --data-urlencode user=demo \
  --data-urlencode password=wrong "http://127.0.0.1:$port/login")
[[ $status == 403 ]] || fail "login with a wrong password: $status, not 403"
forms=$(curl -s -b "$tmp/cookies" -H 'Accept: text/html' "http://127.0.0.1:$port/builders/demo-tests")
grep -q 'action="/builders/demo-tests/force"' <<<"$forms" || fail "no force form once logged in"
status=$(curl -s -o /dev/null -w '%{http_code}' -K - -H 'Content-Type: application/json' \
  -d '{"branch": "master", "reason": "demo"}' "$api/builders/demo-tests/force" <<<"user = \"demo:$password\"")
[[ $status == 202 ]] || fail "force through the API as demo: $status, not 202"

# Both builds, as the README says to watch them.
result_of() { # branch tip -> "result build_id" once finished
  curl -sf "$api/builds?limit=50" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["builds"]:
    if b["branch_tip"] == sys.argv[1] and b["result"] != "running":
        print(b["result"], b["id"], b["merge_commit"])
        break' "$1"
}
passing=$(git rev-parse feature/passing)
failing=$(git rev-parse feature/failing)
for _ in $(seq 300); do
  p=$(result_of "$passing"); f=$(result_of "$failing")
  [[ -n $p && -n $f ]] && break
  sleep 0.1
done
read -r p_result p_id p_merge <<<"$p"
read -r f_result f_id _ <<<"$f"
[[ $p_result == success ]] || fail "feature/passing: '$p_result'"
[[ -n $p_merge ]] || fail "feature/passing was not built as a merge"
parents=0
for dir in "$tmp"/demo/data/work/*/demo-tests/*/; do # one checkout per build slot
  n=$(git -C "$dir" cat-file -p "$p_merge" 2>/dev/null | grep -c '^parent ')
  [[ $n -gt $parents ]] && parents=$n
done
[[ $parents -eq 2 ]] || fail "the merge commit $p_merge does not have two parents"
[[ $f_result == failure ]] || fail "feature/failing: '$f_result'"
log=$(curl -sf "$api/builds/$f_id/steps/1/log")
grep -q "FAILED: BROKEN is in the tree" <<<"$log" || fail "the failing build's log: $log"
p_log=$(curl -sf "$api/builds/$p_id/steps/1/log")
grep -q "all tests passed" <<<"$p_log" || fail "the passing build's log: $p_log"
grep -q "merged with master: $p_merge" <<<"$p_log" || fail "the step did not see the merge commit"
echo "ok: feature/passing $p_result (merge $p_merge), feature/failing $f_result with its log"
kill -TERM "$pid" && wait "$pid"
status=$?
pid=
[[ $status -eq 0 ]] || fail "ci-master exited $status on SIGTERM"
if [[ $failures -gt 0 ]]; then
  echo "--- master log"; cat "$tmp/master.log"
fi
echo "$failures failure(s)"
[[ $failures -eq 0 ]]
