#!/usr/bin/env bash
# Installs what is missing, builds libci, and runs the main job on the example configuration.
# Idempotent: a second run reuses the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

build_dir=${LIBCI_BUILD_DIR:-build}
ensure_packages "${LIBCI_BUILD_PACKAGES[@]}"
configure_build "$build_dir"
compile_build "$build_dir"

# The master itself lands with the scheduler and worker issues; until then the main job is
# validating the example configuration the demo master will run.
log "checking examples/config.yml"
"$build_dir/tools/ci-master/ci-master" check-config examples/config.yml
cat <<MSG

Built: $build_dir/tools/ci-master/ci-master, ci-worker, ci-deploy, ci-wheelhouse.
Try:   $build_dir/tools/ci-master/ci-master --help
MSG
