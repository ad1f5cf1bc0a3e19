#!/usr/bin/env bash
# Installs what is missing, builds libci, and runs every test (unit, integration, examples).
# Idempotent: a second run reuses the build directory. Ends with 'N passed, N failed, N skipped'.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh --suite unit    # extra arguments go to `meson test`
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

build_dir=${LIBCI_BUILD_DIR:-build}
ensure_packages "${LIBCI_BUILD_PACKAGES[@]}" "${LIBCI_TEST_PACKAGES[@]}"
configure_build "$build_dir"
compile_build "$build_dir"
ensure_test_peers "$build_dir"

log "testing"
rm -f "$build_dir/meson-logs/testlog.json"
set +e
meson test -C "$build_dir" --print-errorlogs --num-processes 2 "$@" >"$build_dir/meson-test.out" 2>&1
set -e
# meson's per-test lines and the logs of failures (capped); the summary line comes last.
tail -n 4000 "$build_dir/meson-test.out"
python3 scripts/test-summary.py "$build_dir/meson-logs/testlog.json"
