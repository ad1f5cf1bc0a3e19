#!/usr/bin/env bash
# examples/flocker/config.yml, the old Buildbot deployment's 29 builders written for libci, is a
# valid config for `ci-master check-config` and `ci-deploy check`; it defines exactly the old
# builders (renamed as docs/migrating-from-buildbot.md says); it holds no secret but
# placeholders; and the keys it relies on are really checked: a trigger naming a builder that
# does not exist, a misspelt lock scope or scheduler type, and a step that is both a command
# and an upload are each refused, naming the key.
set -uo pipefail
build_dir=${LIBCI_BUILD_DIR:?}
source_dir=${LIBCI_SOURCE_DIR:?}
master=$build_dir/tools/ci-master/ci-master
deploy=$build_dir/tools/ci-deploy/ci-deploy
example=$source_dir/examples/flocker/config.yml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# The example as it is.
expect 0 "ci-master check-config accepts examples/flocker/config.yml" -- "$master" check-config "$example"
contains "$out" "OK"
expect 0 "ci-deploy check accepts examples/flocker/config.yml" -- "$deploy" check "$example"
contains "$out" "OK"

# Exactly the 29 builders of the old deployment (commit 1ece7ff of ClusterHQ/build.clusterhq.com).
expected_builders=(
  clean-old-builds
  clean-old-resources
  flocker/acceptance/aws/centos-7/aws
  flocker/acceptance/aws/ubuntu-14.04/aws
  flocker/acceptance/rackspace/centos-7/rackspace
  flocker/acceptance/rackspace/ubuntu-14.04/rackspace
  flocker/acceptance/vagrant/centos-7/zfs
  flocker/admin
  flocker/centos-7
  flocker/client/ubuntu-14.04
  flocker/client/ubuntu-15.04
  flocker/docs
  flocker/functional/aws/centos-7/storage-driver
  flocker/functional/aws/ubuntu-14.04/storage-driver
  flocker/functional/rackspace/centos-7/storage-driver
  flocker/functional/redhat-openstack/centos-7/storage-driver
  flocker/homebrew/create
  flocker/homebrew/test
  flocker/installed-package/vagrant/centos-7
  flocker/lint
  flocker/omnibus-centos-7
  flocker/omnibus-ubuntu-14.04
  flocker/omnibus-ubuntu-15.04
  flocker/osx-10.10
  flocker/twisted-trunk
  flocker/ubuntu-14.04
  flocker/unit-test/centos-7/zfs-head
  flocker/vagrant-dev-box
  flocker/vagrant/build/tutorial
)
# The keys at four spaces' indentation inside the top-level builders: section.
awk '/^[^ #]/ { section = $1 } section == "builders:" && /^    [^ #]/ { sub(/^ +/, ""); sub(/:$/, ""); print }' \
  "$example" | sort >"$tmp/builders"
printf '%s\n' "${expected_builders[@]}" | sort >"$tmp/expected"
if [[ ${#expected_builders[@]} -ne 29 ]] || ! diff -u "$tmp/expected" "$tmp/builders"; then
  fail "the example's builders are not the old deployment's 29 (diff above: - expected, + found)"
else
  echo "ok: the example defines the old deployment's 29 builders"
fi

# No secret in the file: every secret key holds a REPLACE-ME placeholder.
secret_lines=$(grep -nE '^ *(password|token|webhook_secret|secret_identifier|passwords): ' "$example")
[[ -n "$secret_lines" ]] || fail "no secret keys found in the example (the grep is stale)"
while IFS= read -r line; do
  [[ "$line" == *'"REPLACE-ME-'* ]] || fail "a secret that is not a REPLACE-ME placeholder: $line"
done <<<"$secret_lines"
echo "ok: secrets are placeholders ($(wc -l <<<"$secret_lines") keys)"

# mutate DESCRIPTION SED_SCRIPT EXPECTED_TEXT...: the example changed by SED_SCRIPT must be
# refused (exit 1) with each EXPECTED_TEXT in the errors.
mutate() {
  local what=$1 script=$2
  shift 2
  sed -e "$script" "$example" >"$tmp/mutated.yml"
  if cmp -s "$example" "$tmp/mutated.yml"; then
    fail "$what: the sed script changed nothing (the example changed?)"
    return
  fi
  expect 1 "$what is refused" -- "$master" check-config "$tmp/mutated.yml"
  local text
  for text in "$@"; do
    contains "$err" "$text"
  done
}
# The first "builders: [flocker/homebrew/test]" is the trigger step of flocker/homebrew/create.
mutate "a trigger naming no builder" \
  '0,/builders: \[flocker\/homebrew\/test\]/s//builders: [flocker\/homebrew\/tset]/' \
  "trigger.builders" "flocker/homebrew/tset"
mutate "a misspelt lock scope" 's/scope: worker/scope: wokrer/' "locks.functional-tests.scope"
mutate "a misspelt scheduler type" \
  's/^\(        type: \)triggerable$/\1trigerable/' "schedulers.trigger/" ".type"
mutate "a step that is both an upload and a command" \
  's/^\(              upload: {from: docs\/_build\/html, to: html}\)$/\1\n              run: "true"/' \
  "builders.flocker/docs.steps["

if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
