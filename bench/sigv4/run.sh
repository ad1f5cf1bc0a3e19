#!/usr/bin/env bash
# SigV4 signing: libci against botocore's SigV4Auth, side by side in one run, on one core, with
# the ratios; and the payload hash of a 64 MiB file against sha256sum.
#
#   bench/sigv4/run.sh [BUILD_DIR] [SECONDS_PER_CASE]
#
# Targets (issue 3): at least 50x botocore; within 2.5x of the floor (SHA-256 of the canonical
# request plus one HMAC under a cached key); payload hash at least 0.9x sha256sum's speed.
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir=${1:-build}
seconds=${2:-2}
bench=$build_dir/bench/sigv4_bench
[[ -x $bench ]] || { echo "error: $bench not built (meson setup -Dbench=enabled)"; exit 2; }
python=${PYTHON:-python3}
$python -c 'import botocore' 2>/dev/null || python=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
head -c $((64 << 20)) /dev/urandom >"$tmp/payload.bin"

# One core for both sides, so neither gains from the machine's other cores.
pin=(taskset -c 0)
command -v taskset >/dev/null || pin=()

"${pin[@]}" "$bench" "$seconds" "$tmp/payload.bin" | tee "$tmp/libci.txt"
"${pin[@]}" "$python" bench/sigv4/botocore_bench.py "$seconds" | tee "$tmp/botocore.txt"
"${pin[@]}" sha256sum "$tmp/payload.bin" >/dev/null # warm
best=0
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "${pin[@]}" sha256sum "$tmp/payload.bin" >/dev/null
  end=$(date +%s.%N)
  best=$(awk -v b="$best" -v s="$start" -v e="$end" 'BEGIN { r = 64 / (e - s); print (r > b ? r : b) }')
done
echo "payload_sha256.sha256sum $best MiB/s"

value() { awk -v k="$1" '$1 == k { print $2 }' "$tmp"/libci.txt "$tmp"/botocore.txt; }
echo
echo "== ratios ($(python3 -c 'import botocore; print("botocore", botocore.__version__)' 2>/dev/null || true))"
for case in ec2_describe_instances s3_put_object; do
  awk -v c="$case" -v ours="$(value $case.libci)" -v boto="$(value $case.botocore)" \
    -v floor="$(value $case.floor)" 'BEGIN {
      printf "%-24s libci/botocore %6.1fx (target >= 50x)   floor/libci %4.2fx (target <= 2.5x)\n",
             c, ours / boto, floor / ours }'
done
awk -v ratio="$(value ec2_describe_instances.floor_with_body_hash_ratio)" 'BEGIN {
  printf "%-24s floor+body hash/libci %4.2fx (EC2 must hash its form body too)\n", "", ratio }'
awk -v ours="$(value payload_sha256.libci)" -v peer="$best" 'BEGIN {
  printf "%-24s libci/sha256sum %5.2fx (target >= 0.9x)\n", "payload_sha256", ours / peer }'
