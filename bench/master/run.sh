#!/usr/bin/env bash
# Webhook ingest: ci-master against Debian's Buildbot 3.7 master (its GitHub change hook), side
# by side in one run: accepted webhooks/s and p99 latency at 1, 4, 16 and 64 concurrent senders,
# idle RSS of both, ci-master's RSS with 1,000 idle workers connected; with the ratios.
#
#   bench/master/run.sh [BUILD_DIR] [webhook_bench.py options, e.g. --seconds 5 --only buildbot]
#
# Targets (the issue): ours >= 100x Buildbot's accepted webhooks/s; idle RSS <= 1/5 of
# Buildbot's; <= 100 MB with 1,000 workers. Needs `apt-get install buildbot` (installed on
# first use when missing) and BUILD_DIR/bench/webhook_load and BUILD_DIR/tools/ci-master/ci-master.
# Takes about 3 minutes (per --rounds); run it on an otherwise idle machine (it pins the load to CPU 0 and the
# masters to CPU 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir=${1:-build}
shift || true
for target in bench/webhook_load tools/ci-master/ci-master; do
  [[ -x $build_dir/$target ]] || { echo "error: $build_dir/$target not built (ninja -C $build_dir $target)"; exit 2; }
done
exec python3 bench/master/webhook_bench.py "$build_dir" "$@"
