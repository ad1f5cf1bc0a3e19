#!/usr/bin/env bash
# The web UI's home page at 200 builders x 50 branches vs the same grid as JSON (bench/ui).
#   bench/ui/run.sh [BUILD_DIR]   (configured with -Dbench=enabled)
set -euo pipefail
build=${1:-build}
ninja -C "$build" home_bench >/dev/null
"$build/bench/home_bench"
