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

source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# The old deployment's files have no deploy section: ci-deploy checks them with one (its check
# asks for what start needs: an image for the default runtime, docker).
mkdir -p "$tmp/old"
for file in config.yml staging.yml; do
  cp "$source_dir/tests/data/config/$file" "$tmp/old/$file"
  printf 'deploy: {image: registry.example.org/libci/master}\n' >>"$tmp/old/$file"
done
for tool in "$master check-config" "$deploy check"; do
  name=$(basename "${tool%% *}")
  old_dir=$source_dir/tests/data/config
  [[ $name == ci-deploy ]] && old_dir=$tmp/old
  for file in config.yml staging.yml; do
    expect 0 "$name accepts the old deployment's $file" -- $tool "$old_dir/$file"
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

# Hostile texts (issue 15): one error at their place, quickly, never a crash or an endless read.
deep=$(printf '%*s' 25000 '' | tr ' ' '[')$(printf '%*s' 25000 '' | tr ' ' ']')
expect 1 "25,000 nested arrays in \$LIBCI_CONFIG are refused" -- env LIBCI_CONFIG="$deep" "$master" check-config
contains "$err" "\$LIBCI_CONFIG:1:65: nested deeper than 64 arrays and objects"
printf '{"a": %s}\n' "$deep" >"$tmp/deep.json"
chmod 600 "$tmp/deep.json"
expect 1 "a JSON file nested 25,000 deep is refused" -- "$master" check-config "$tmp/deep.json"
contains "$err" "deep.json:1:70: nested deeper than 64 arrays and objects"
printf 'a: %s\n' "$deep" >"$tmp/deep.yml"
expect 1 "a YAML file nested 25,000 deep is refused" -- "$master" check-config "$tmp/deep.yml"
contains "$err" "deep.yml:1:67: nested deeper than 64 mappings and lists"
printf '\0buildmaster: {}\n' >"$tmp/nul.yml"
expect 1 "a file starting with a NUL byte is refused" -- "$master" check-config "$tmp/nul.yml"
contains "$err" "nul.yml:1:1: a NUL byte: a config is UTF-8 text"
expect 1 "check-config /dev/zero stops at the size limit" -- timeout 20 "$master" check-config /dev/zero
contains "$err" "/dev/zero: longer than 4 MiB, the limit for a config"
printf '{"github": {"token": "a"}, "github": {}}' >"$tmp/dup.json"
chmod 600 "$tmp/dup.json"
expect 1 "a key twice in the JSON form is an error" -- "$master" check-config "$tmp/dup.json"
contains "$err" "dup.json: github: duplicate key"

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

# buildmaster.limits: every value in its range, a per-address cap at most its total.
cat >"$tmp/limits.yml" <<'YAML'
buildmaster:
  limits:
    worker_connections: 0
    http_connections: 10
    http_connections_per_address: 20
    body_memory_bytes: 5
    hello_timeout: 0s
    request_timeout: 5s
    idle_timout: 1s
YAML
expect 1 "buildmaster.limits out of range are reported" -- "$master" check-config "$tmp/limits.yml"
contains "$err" "limits.yml:3:25: buildmaster.limits.worker_connections: expected an integer from 1 to 1000000, got 0"
contains "$err" "buildmaster.limits.http_connections_per_address: must be at most the total (10), got 20"
contains "$err" "buildmaster.limits.body_memory_bytes: expected an integer from 65536 to 1073741824, got 5"
contains "$err" "buildmaster.limits.hello_timeout: expected a duration from 1s to 600s, got 0s"
contains "$err" "buildmaster.limits.request_timeout: must be at least header_timeout (10s), got 5s"
contains "$err" "buildmaster.limits.idle_timout: unknown key (did you mean \"idle_timeout\"?)"
contains "$err" "6 errors"
printf 'buildmaster:\n  limits: {worker_connections: 10, worker_connections_per_address: 10, hello_timeout: 1m}\n' >"$tmp/limits.yml"
expect 0 "buildmaster.limits in range pass" -- "$master" check-config "$tmp/limits.yml"

# ci-master fingerprint: a data dir without a certificate (a wrong --data-dir) is refused, naming
# the path, and nothing is created there; --create makes one (rotation) and prints its pin, which
# a second run without --create prints again.
printf 'buildmaster: {host: ci.example.org}\n' >"$tmp/fp.yml"
mkdir -p "$tmp/fp-data"
expect 1 "fingerprint refuses a data dir without a certificate" -- "$master" fingerprint --config "$tmp/fp.yml" --data-dir "$tmp/fp-data"
contains "$err" "no certificate in $tmp/fp-data/tls/cert.pem"
contains "$err" "--create"
[[ ! -e $tmp/fp-data/tls ]] || { echo "FAIL: fingerprint created $tmp/fp-data/tls without --create"; failures=$((failures + 1)); }
expect 0 "fingerprint --create makes the certificate" -- "$master" fingerprint --create --config "$tmp/fp.yml" --data-dir "$tmp/fp-data"
created=$out
contains "$created" "sha256:"
expect 0 "fingerprint prints the certificate made before" -- "$master" fingerprint --config "$tmp/fp.yml" --data-dir "$tmp/fp-data"
[[ $out == "$created" ]] || { echo "FAIL: fingerprint printed $out, then $created"; failures=$((failures + 1)); }
expect 0 "fingerprint --help explains --create" -- "$master" fingerprint --help
contains "$out" "--create"

for tool in "$master" "$deploy"; do
  expect 2 "$(basename "$tool") names an unknown command" -- "$tool" bogus
  contains "$err" "error: unknown command 'bogus' (commands: "
  contains "$err" "check"
done
# A mistyped command or flag gets the closest one (CLI11 alone only says it was not expected).
expect 2 "ci-deploy suggests a command" -- "$deploy" strat
contains "$err" "error: unknown command 'strat': did you mean 'start'? (commands: "
expect 2 "ci-master suggests a command" -- "$master" chek-config
contains "$err" "did you mean 'check-config'?"
expect 2 "ci-master start suggests a flag" -- "$master" start --confg "$tmp/x.yml"
contains "$err" "--confg: did you mean --config?"
expect 2 "ci-master start suggests a flag given with =" -- "$master" start --data-dri=/tmp/x
contains "$err" "--data-dri: did you mean --data-dir?"
expect 2 "ci-worker start suggests a flag" -- "$build_dir/tools/ci-worker/ci-worker" start --mastr 127.0.0.1:1
contains "$err" "--mastr: did you mean --master?"
expect 2 "a flag far from every flag gets no suggestion" -- "$master" start --zzzzzzzz
[[ $err != *"did you mean"* ]] || fail "a suggestion for --zzzzzzzz: $err"

expect 2 "start refuses a host name for --listen, before anything is made" -- "$master" start --listen localhost --config "$source_dir/examples/config.yml" --data-dir "$tmp/listen-data"
contains "$err" "--listen: \"localhost\" is not an IP address"
[[ ! -e $tmp/listen-data ]] || fail "start --listen localhost made $tmp/listen-data"

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
# check validates what a deploy command needs too: the default runtime (docker) needs an image.
expect 1 "ci-deploy check needs deploy.image for the default runtime" -- bash -c "cd '$tmp/cwd' && '$deploy' check"
# The deploy plan's errors are placed like the others (file:line:column), here at the start of
# the file: there is no deploy section.
contains "$err" "config.yml:1:1: deploy.image: required for runtime docker"
contains "$err" "1 error"
expect 1 "ci-deploy check needs deploy.image for a named file" -- "$deploy" check "$tmp/cwd/config.yml"
contains "$err" "$tmp/cwd/config.yml:1:1: deploy.image: required for runtime docker"
printf 'buildmaster:\n  host: ci.example.org\n  web_port: 0\ndeploy:\n  image: registry.example.org/m\n' >"$tmp/ports.yml"
expect 1 "ci-deploy check places a plan error at its key" -- "$deploy" check "$tmp/ports.yml"
contains "$err" "$tmp/ports.yml:3:3: buildmaster.web_port: runtime docker publishes fixed ports"
expect 0 "ci-master check-config does not ask for a deploy section" -- "$master" check-config "$tmp/cwd/config.yml"
expect 1 "ci-deploy start needs deploy.image for the default runtime" -- bash -c "cd '$tmp/cwd' && '$deploy' start"
contains "$err" "error: deploy.image: required for runtime docker"
# A CONFIG that cannot be read is refused (1), not "target unreachable" (3), naming the file.
for command in start update restart stop status; do
  expect 1 "ci-deploy $command refuses a missing CONFIG" -- "$deploy" "$command" "$tmp/missing.yml"
  contains "$err" "refused: cannot read the config file $tmp/missing.yml (nothing was changed)"
done
expect 0 "--help explains each ci-deploy command" -- "$deploy" --help
for command in check start update restart stop status logs; do
  contains "$out" "  $command "
done
expect 0 "ci-deploy update --help names its options" -- "$deploy" update --help
for option in --timeout --force --health-timeout --identity --ssh-config --api "Exit status: 0 done, 1 refused"; do
  contains "$out" "$option"
done

# Issue 15: slaves.<class>.step_user names a user that exists, and the master must be root.
printf 'slaves:\n  local: {local: true, step_user: libci-no-such-user}\n' >"$tmp/nouser.yml"
expect 1 "check-config refuses a step_user that does not exist" -- "$master" check-config "$tmp/nouser.yml"
contains "$err" "slaves.local.step_user: step_user 'libci-no-such-user': no such user"
printf 'slaves:\n  local: {local: true, step_user: nobody}\n' >"$tmp/nobody.yml"
if [[ $(id -u) -eq 0 ]]; then
  expect 0 "check-config accepts step_user nobody as root" -- "$master" check-config "$tmp/nobody.yml"
  chmod 755 "$tmp"
  expect 1 "check-config refuses step_user when not root" -- \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$master" check-config "$tmp/nobody.yml"
else
  expect 1 "check-config refuses step_user when not root" -- "$master" check-config "$tmp/nobody.yml"
fi
contains "$err" "slaves.local.step_user: the master must run as root to run steps as 'nobody'"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
