#!/usr/bin/env bash
# `ci-master check-config` and `ci-deploy check` as a user runs them: the old deployment's files
# pass with warnings, a file with three mistakes gets all three reported with line:column and key
# path and exit 1, an unreadable file exits 3, and the JSON form works from a 0600 file and from
# $LIBCI_CONFIG.
set -uo pipefail
build_dir=${LIBCI_BUILD_DIR:?}
source_dir=${LIBCI_SOURCE_DIR:?}
master=$build_dir/tools/ci-master/ci-master
deploy=$build_dir/tools/ci-deploy/ci-deploy
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

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

expect 0 "--help explains check-config" -- "$master" check-config --help
contains "$out" "file:line:column: key.path: message"

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
