#!/usr/bin/env bash
# Runs each libFuzzer target of a fuzz build (meson -Dfuzz=enabled, clang, ASan+UBSan) over its
# seed corpus in tests/fuzz/corpus/<target>/ for a bounded time. Exits 1 when a target crashes,
# leaks, trips a sanitizer or times out on one input; the input that did it is kept in
# BUILD_DIR/fuzz-artifacts/ (copy it into the target's corpus once fixed, as a regression input).
#
#   scripts/fuzz.sh [BUILD_DIR] [TARGET...]     # default: build-fuzz, every target
#   FUZZ_SECONDS=600 scripts/fuzz.sh            # longer runs (default 30 s per target)
#   FUZZ_JOBS=4 scripts/fuzz.sh                 # targets at once (default: the cores, at most 2)
#
# Set up the build with:
#   CXX=clang++-16 meson setup build-fuzz -Dfuzz=enabled -Db_sanitize=address,undefined \
#     -Db_lundef=false -Dtests=disabled -Dexamples=disabled -Dbench=disabled
#   ninja -C build-fuzz fuzz
# New inputs the fuzzer finds go to BUILD_DIR/fuzz-corpus/<target>/ (the checked-in seeds are
# never changed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
build_dir=${1:-build-fuzz}
shift || true
seconds=${FUZZ_SECONDS:-30}
jobs=${FUZZ_JOBS:-$(($(nproc) < 2 ? $(nproc) : 2))}
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(find tests/fuzz/corpus -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
fi
artifacts=$build_dir/fuzz-artifacts
mkdir -p "$artifacts"

# Runs one target; its output in BUILD_DIR/fuzz-<target>.log.
run_one() {
  local target=$1 exe=$build_dir/tests/fuzz/fuzz_$1
  local corpus=$build_dir/fuzz-corpus/$1 log=$build_dir/fuzz-$1.log
  if [[ ! -x $exe ]]; then
    echo "fuzz $target: $exe not built (ninja -C $build_dir fuzz)" >&2
    return 1
  fi
  mkdir -p "$corpus"
  # -timeout: one input taking 10 s is a finding (a loop); -rss_limit_mb bounds a leak or blowup;
  # -max_len lets inputs grow to 64 KiB (bodies, config files), beyond the seeds' sizes.
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=$PWD/.ci/ubsan.supp \
    "$exe" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
    "$corpus" "tests/fuzz/corpus/$target" >"$log" 2>&1; then
    echo "fuzz $target: ok, $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" |
      grep -o '[0-9]*$') inputs in ${seconds} s"
  else
    echo "fuzz $target: FAILED (log: $log; input: $(ls "$artifacts/$target-"* 2>/dev/null | head -1))" >&2
    grep -E -A30 'ERROR: |runtime error|==[0-9]+==' "$log" | head -60 >&2
    return 1
  fi
}

status=0
running=0
pids=()
for target in "${targets[@]}"; do
  run_one "$target" &
  pids+=($!)
  running=$((running + 1))
  if [[ $running -ge $jobs ]]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [[ $running -gt 0 ]]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
