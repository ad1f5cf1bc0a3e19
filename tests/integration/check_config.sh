#!/usr/bin/env bash
# `ci-master check-config` and `ci-deploy check` as a user runs them: the old deployment's files
# pass with warnings, a file with three mistakes gets all three reported with line:column and key
# path and exit 1, an unreadable file exits 3, and the JSON form works from a 0600 file and from
# $LIBCI_CONFIG; the certificate files of buildmaster.tls are read and checked.
# $LIBCI_CONFIG; `ci-deploy check` reads ./config.yml by default and names the deploy section's
# mistakes, and its deploy commands refuse a config with errors.
set -uo pipefail
build_dir=${LIBCI_BUILD_DIR:?}
source_dir=${LIBCI_SOURCE_DIR:?}
master=$build_dir/tools/ci-master/ci-master
deploy=$build_dir/tools/ci-deploy/ci-deploy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND, keeps its output in $out and $err.
expect() {
  local status=$1 what=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [[ $got -ne $status ]]; then
    echo "FAIL: $what: exit $got, expected $status"
    echo "  stdout: $out"
    echo "  stderr: $err"
    failures=$((failures + 1))
  else
    echo "ok: $what"
  fi
}
contains() {
  if ! grep -qF -- "$2" <<<"$1"; then
    echo "FAIL: expected to find: $2"
    echo "  in: $1"
    failures=$((failures + 1))
  fi
}

for tool in "$master check-config" "$deploy check"; do
  name=$(basename "${tool%% *}")
  for file in config.yml staging.yml; do
    expect 0 "$name accepts the old deployment's $file" -- $tool "$source_dir/tests/data/config/$file"
    contains "$out" "OK"
    contains "$err" "$file:11:1: warning: manhole: not supported by libci"
  done
  expect 0 "$name accepts examples/config.yml" -- $tool "$source_dir/examples/config.yml"

  cat >"$tmp/three.yml" <<'YAML'
buildmaster:
  web_port: eighty
  hostt: ci.example.org
auth:
  user: admin
YAML
  expect 1 "$name reports three mistakes" -- $tool "$tmp/three.yml"
  contains "$err" "three.yml:2:13: buildmaster.web_port: expected an integer, got \"eighty\""
  contains "$err" "three.yml:3:3: buildmaster.hostt: unknown key (did you mean \"host\"?)"
  contains "$err" "three.yml:5:3: auth.password: missing required key"
  contains "$err" "3 errors"
  [[ -z "$out" ]] || { echo "FAIL: $name printed on stdout for a bad config: $out"; failures=$((failures + 1)); }

  printf 'buildmaster: {max_retries: -2}\n' >"$tmp/retries.yml"
  expect 1 "$name checks buildmaster.max_retries" -- $tool "$tmp/retries.yml"
  contains "$err" "retries.yml:1:28: buildmaster.max_retries:"
  contains "$err" "from 0 to 100, got -2"

  printf 'buildmaster: {results_retention: 2w}\n' >"$tmp/retention.yml"
  expect 1 "$name checks buildmaster.results_retention" -- $tool "$tmp/retention.yml"
  contains "$err" "retention.yml:1:34: buildmaster.results_retention: expected a duration"

  expect 3 "$name exits 3 on an unreadable file" -- $tool "$tmp/absent.yml"
  contains "$err" "error: read config $tmp/absent.yml: No such file or directory"
done

# The JSON form: a 0600 file, and the environment variable (removed before anything runs).
cat >"$tmp/master.json" <<'JSON'
{"buildmaster": {"host": "ci.example.org", "web_port": 8080},
 "slaves": {"local": {"local": true}}}
JSON
chmod 600 "$tmp/master.json"
expect 0 "a 0600 JSON config is accepted" -- "$master" check-config "$tmp/master.json"
chmod 644 "$tmp/master.json"
expect 3 "a JSON config others can read is refused" -- "$master" check-config "$tmp/master.json"
contains "$err" "chmod 600"
expect 0 "the JSON config from \$LIBCI_CONFIG is accepted" -- \
  env LIBCI_CONFIG='{"buildmaster": {"host": "h"}}' "$master" check-config
expect 1 "a bad JSON config in \$LIBCI_CONFIG is reported" -- \
  env LIBCI_CONFIG='{"buildmaster": {"hots": "h"}}' "$master" check-config
contains "$err" "\$LIBCI_CONFIG: buildmaster.hots: unknown key (did you mean \"host\"?)"
expect 2 "no FILE and no \$LIBCI_CONFIG is a usage error" -- env -u LIBCI_CONFIG "$master" check-config

# buildmaster.tls: the files it names are read (issue 17).
printf 'buildmaster: {tls: {cert: %s/missing.pem, key: %s/missing.key}}\n' "$tmp" "$tmp" >"$tmp/tls.yml"
expect 1 "a missing buildmaster.tls.cert is reported" -- "$master" check-config "$tmp/tls.yml"
contains "$err" "buildmaster.tls.cert: cannot read $tmp/missing.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/a.key" \
  -out "$tmp/a.pem" -days 1 -subj /CN=a 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/b.key" \
  -out "$tmp/b.pem" -days 1 -subj /CN=b 2>/dev/null
printf 'buildmaster: {tls: {cert: %s/a.pem, key: %s/b.key}}\n' "$tmp" "$tmp" >"$tmp/tls.yml"
expect 1 "a key of another certificate is reported" -- "$master" check-config "$tmp/tls.yml"
contains "$err" "buildmaster.tls.key: the key in $tmp/b.key does not belong to the certificate"
printf 'buildmaster: {tls: {cert: %s/a.key, key: %s/a.key}}\n' "$tmp" "$tmp" >"$tmp/tls.yml"
expect 1 "a cert file that holds no certificate is reported" -- "$master" check-config "$tmp/tls.yml"
contains "$err" "buildmaster.tls.cert: $tmp/a.key holds no PEM certificate"
printf 'buildmaster: {tls: {cert: %s/a.pem, key: %s/a.key}}\n' "$tmp" "$tmp" >"$tmp/tls.yml"
expect 0 "a matching certificate and key pass" -- "$master" check-config "$tmp/tls.yml"
printf 'buildmaster: {tls: {cert: %s/a.pem}}\n' "$tmp" >"$tmp/tls.yml"
expect 1 "a cert without its key is reported" -- "$master" check-config "$tmp/tls.yml"
contains "$err" "buildmaster.tls.key: cert and key go together"

expect 0 "--help explains check-config" -- "$master" check-config --help
contains "$out" "file:line:column: key.path: message"

# ci-deploy check: CONFIG defaults to config.yml; the deploy section's mistakes name their key;
# a deploy command refuses such a file before it reaches any target.
mkdir -p "$tmp/cwd"
printf 'deploy:\n  target: ci.example.org\n  runtime: process\n' >"$tmp/cwd/config.yml"
expect 1 "ci-deploy check reads ./config.yml" -- bash -c "cd '$tmp/cwd' && '$deploy' check"
contains "$err" "config.yml:2:11: deploy.target: expected \"local\" or an ssh:// URL naming USER@HOST[:PORT], got \"ci.example.org\": not an ssh:// URL"
contains "$err" "config.yml:2:3: deploy.binary: required for runtime process"
expect 1 "ci-deploy start refuses a config with errors" -- bash -c "cd '$tmp/cwd' && '$deploy' start"
contains "$err" "refused: 2 errors in config.yml (nothing was changed)"
printf 'buildmaster: {host: ci.example.org}\n' >"$tmp/cwd/config.yml"
expect 1 "ci-deploy start needs deploy.image for the default runtime" -- bash -c "cd '$tmp/cwd' && '$deploy' start"
contains "$err" "error: deploy.image: required for runtime docker"
expect 0 "--help explains each ci-deploy command" -- "$deploy" --help
for command in check start update restart stop status logs; do
  contains "$out" "  $command "
done
expect 0 "ci-deploy update --help names its options" -- "$deploy" update --help
for option in --timeout --force --health-timeout --identity --ssh-config --api "Exit status: 0 done, 1 refused"; do
  contains "$out" "$option"
done

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
