#!/usr/bin/env bash
# scripts/lib.sh's build jobs (what scripts/quickstart.sh and scripts/test.sh build with):
# LIBCI_JOBS when set, refused when it is not a number; else the cores, at most one per
# 1.5 GiB of available memory; and compile_build passes them to ninja (a fake ninja on PATH
# records its arguments).
set -uo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# shellcheck source=/dev/null # scripts/lib.sh of the source tree
source "${LIBCI_SOURCE_DIR:?}/scripts/lib.sh"

[[ $(LIBCI_JOBS=3 build_jobs) == 3 ]] || fail "LIBCI_JOBS=3 gives $(LIBCI_JOBS=3 build_jobs)"
for bad in abc 0 -2 "1 2" 99999; do
  if out=$(LIBCI_JOBS=$bad build_jobs 2>&1); then
    fail "LIBCI_JOBS='$bad' accepted: $out"
  elif [[ $out != *"LIBCI_JOBS"*"'$bad'"* ]]; then
    fail "LIBCI_JOBS='$bad': the error does not name it: $out"
  fi
done
jobs=$(LIBCI_JOBS='' build_jobs)
cores=$(nproc)
available_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
expected=$((available_kib / 1572864 < cores ? available_kib / 1572864 : cores))
((expected < 1)) && expected=1
[[ $jobs == "$expected" ]] || fail "unset: $jobs jobs, expected $expected ($cores cores)"
[[ $jobs -le $cores ]] || fail "unset: $jobs jobs on $cores cores"

# compile_build runs ninja with them.
mkdir -p "$tmp/bin" "$tmp/build"
cat >"$tmp/bin/ninja" <<'NINJA'
#!/bin/sh
echo "$*" >"$NINJA_ARGS"
NINJA
chmod +x "$tmp/bin/ninja"
export NINJA_ARGS=$tmp/args
PATH=$tmp/bin:$PATH LIBCI_JOBS=2 compile_build "$tmp/build" some-target 2>/dev/null ||
  fail "compile_build failed"
[[ $(cat "$tmp/args" 2>/dev/null) == "-C $tmp/build -j 2 some-target" ]] ||
  fail "ninja ran with: $(cat "$tmp/args" 2>/dev/null)"
if PATH=$tmp/bin:$PATH LIBCI_JOBS=many compile_build "$tmp/build" 2>/dev/null; then
  fail "compile_build with LIBCI_JOBS=many did not fail"
fi
echo "ok: LIBCI_JOBS=3 -> 3, bad values refused naming it, unset -> $jobs on $cores cores"
echo "$failures failure(s)"
[[ $failures -eq 0 ]]
