# Shared by scripts/quickstart.sh, scripts/test.sh and .ci/run. Sourced, not run.
# shellcheck shell=bash

# Debian 12 packages needed to build libci and its tools.
LIBCI_BUILD_PACKAGES=(
  g++ meson ninja-build pkg-config cmake git python3
  libcurl4-openssl-dev libssl-dev libgit2-dev libyaml-cpp-dev rapidjson-dev libcli11-dev
  doctest-dev libboost-dev libsqlite3-dev libpugixml-dev libzip-dev libspdlog-dev zlib1g-dev
  libkainjow-mustache-dev # the web UI's templates (header-only)
)
# What the test suites use besides the build: real peers run on 127.0.0.1.
LIBCI_TEST_PACKAGES=(
  python3-botocore python3-venv python3-openssl # python3-openssl: TLS workers in tests
  openssh-server openssh-client # the SSH checkout test runs a real sshd on 127.0.0.1
  python3-pip python3-setuptools python3-wheel curl # the wheelhouse test: pip builds, installs
  chromium # the web UI's browser test (tests/browser), driven by npm playwright-core
)

log() { printf '==> %s\n' "$*" >&2; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "error: '$*' needs root; run as root or install sudo" >&2
    return 1
  fi
}

# Installs the Debian packages among "$@" that are not installed yet; does nothing when all are.
ensure_packages() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  # Packages installed for the tests (openssh-server) must not start system services: the
  # tests run their own servers on 127.0.0.1. Debian asks policy-rc.d; where there is none,
  # one that refuses is in place for the install only.
  local policy=/usr/sbin/policy-rc.d own_policy=0 status=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod 755 "$policy"
    own_policy=1
  fi
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || status=$?
  if [[ $own_policy -eq 1 ]]; then
    as_root rm -f "$policy"
  fi
  return $status
}

# Configures DIR with the given meson options (-Dname=value) and warnings as errors: libci builds
# without a warning with the compiler these scripts install, while meson.build leaves werror off
# for packagers, whose compilers and flags differ. A DIR configured before (by an earlier run, or
# by hand with `meson setup DIR`) keeps its other settings and gets only those of these options
# whose value differs; ninja reconfigures by itself when a meson.build changes.
configure_build() {
  local dir=$1
  shift
  local options=(-Dwerror=true "$@")
  if [[ ! -f "$dir/build.ninja" ]]; then
    log "configuring $dir ${options[*]}"
    meson setup "$dir" "${options[@]}" >/dev/null || meson setup "$dir" "${options[@]}"
    return
  fi
  local changed
  changed=$(python3 - "$dir/meson-info/intro-buildoptions.json" "${options[@]}" <<'PY'
import json, sys
with open(sys.argv[1], encoding="utf-8") as f:
    current = {o["name"]: o["value"] for o in json.load(f)}
def text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)
for option in sys.argv[2:]:
    name, _, value = option.removeprefix("-D").partition("=")
    if name not in current or text(current[name]) != value:
        print(option)
PY
  ) || return 1
  if [[ -n $changed ]]; then
    mapfile -t changed <<<"$changed"
    log "reconfiguring $dir ${changed[*]}"
    meson configure "$dir" "${changed[@]}" >/dev/null || meson configure "$dir" "${changed[@]}"
  fi
}

# How many compilers a build runs at once: LIBCI_JOBS when set (a positive integer), else
# the cores (nproc: ninja alone would run two more), but no more than one per 1.5 GiB of
# available memory (a compile of libci's larger files takes about 1 GiB).
build_jobs() {
  if [[ -n ${LIBCI_JOBS:-} ]]; then
    if [[ ! $LIBCI_JOBS =~ ^[1-9][0-9]{0,3}$ ]]; then
      echo "error: LIBCI_JOBS must be a number of jobs from 1 to 9999, not '$LIBCI_JOBS'" >&2
      return 1
    fi
    echo "$LIBCI_JOBS"
    return
  fi
  local jobs by_memory available_kib
  jobs=$(nproc 2>/dev/null || echo 1)
  available_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || true)
  if [[ -n $available_kib ]]; then
    by_memory=$((available_kib / 1572864))
    ((by_memory < jobs)) && jobs=$by_memory
  fi
  ((jobs < 1)) && jobs=1
  echo "$jobs"
}

# Builds DIR (or only the given ninja targets of it) with build_jobs jobs, printing only
# warnings and errors (ninja's full output goes to DIR/ninja.log).
compile_build() {
  local dir=$1 jobs
  shift
  jobs=$(build_jobs) || return 1
  log "building $dir${*:+: $*} ($jobs jobs at once; LIBCI_JOBS=N to change)"
  if ! ninja -C "$dir" -j "$jobs" "$@" >"$dir/ninja.log" 2>&1; then
    grep -E -A12 'FAILED|error:' "$dir/ninja.log" | head -200 >&2
    echo "error: build failed; full log in $dir/ninja.log" >&2
    return 1
  fi
}

# Builds in DIR only what the tests that "$@" selects run (`meson test`'s --suite SUITE and test
# names; see scripts/test-targets.py), so that `meson test --no-rebuild` with the same selection
# finds everything it needs.
compile_tests() {
  local dir=$1
  shift
  # Regenerates build.ninja first when a meson.build changed, so that the introspection is current.
  ninja -C "$dir" build.ninja >"$dir/ninja.log" 2>&1 || {
    cat "$dir/ninja.log" >&2
    return 1
  }
  local targets
  targets=$(python3 scripts/test-targets.py "$dir" "$@") || return 1
  mapfile -t targets <<<"$targets"
  compile_build "$dir" "${targets[@]}"
}

# Makes the test peers that are not Debian packages available under DIR/peers and exports where
# they are: s3rver (npm) as LIBCI_S3RVER, playwright-core (npm) as LIBCI_PLAYWRIGHT (its package
# directory under node_modules, for require()) with Debian's chromium as LIBCI_CHROMIUM, and
# moto_server as LIBCI_MOTO_SERVER (from PATH, or installed with pip into a venv). A peer that
# cannot be had is left unset: the tests that need it then report a loud SKIP naming it.
ensure_test_peers() {
  mkdir -p "$1/peers"
  local dir
  dir=$(cd "$1/peers" && pwd)
  # Debian's nodejs and npm, unless a node and npm are there already (from another source, whose
  # packages would conflict with Debian's).
  if ! command -v npm >/dev/null 2>&1; then
    ensure_packages nodejs npm || log "warning: cannot install nodejs and npm"
  fi
  # The npm packages missing under DIR/peers, installed by one npm install. A failed one is
  # remembered like a failed pip install below: it takes minutes (its retries and the timeout)
  # and would fail again on the next run all the same.
  local -A npm_files=([s3rver@3]=s3rver/bin/s3rver.js [playwright-core@1]=playwright-core/index.js)
  local missing=() spec
  for spec in "${!npm_files[@]}"; do
    [[ -f "$dir/node_modules/${npm_files[$spec]}" ]] || missing+=("$spec")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ -f "$dir/npm-failed" ]]; then
      log "${missing[*]} unavailable (npm failed before; delete $dir/npm-failed to try again): their tests will SKIP"
    elif command -v npm >/dev/null 2>&1; then
      log "installing ${missing[*]} (npm) into $dir"
      if ! (cd "$dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error \
        "${missing[@]}" >"$dir/npm.log" 2>&1); then
        log "warning: ${missing[*]} unavailable (npm failed, see $dir/npm.log): their tests will SKIP"
        touch "$dir/npm-failed"
      fi
    fi
  fi
  if [[ -f "$dir/node_modules/s3rver/bin/s3rver.js" ]]; then
    export LIBCI_S3RVER=$dir/node_modules/s3rver/bin/s3rver.js
  fi
  if [[ -f "$dir/node_modules/playwright-core/index.js" ]]; then
    export LIBCI_PLAYWRIGHT=$dir/node_modules/playwright-core
  fi
  if command -v chromium >/dev/null 2>&1; then
    LIBCI_CHROMIUM=$(command -v chromium)
    export LIBCI_CHROMIUM
  fi
  if command -v moto_server >/dev/null 2>&1; then
    LIBCI_MOTO_SERVER=$(command -v moto_server)
  elif [[ -x "$dir/venv/bin/moto_server" ]]; then
    LIBCI_MOTO_SERVER=$dir/venv/bin/moto_server
  elif [[ -f "$dir/pip-failed" ]]; then
    log "moto_server unavailable (pip failed before; delete $dir/pip-failed to try again): its tests will SKIP"
    LIBCI_MOTO_SERVER=
  else
    log "moto_server is not installed; trying pip install 'moto[server]' into $dir/venv"
    if python3 -m venv "$dir/venv" >"$dir/pip.log" 2>&1 &&
      timeout 300 "$dir/venv/bin/pip" install --quiet --retries 1 --timeout 15 'moto[server]' \
        >>"$dir/pip.log" 2>&1; then
      LIBCI_MOTO_SERVER=$dir/venv/bin/moto_server
    else
      log "warning: moto_server unavailable (pip failed, see $dir/pip.log): its tests will SKIP"
      touch "$dir/pip-failed"
      LIBCI_MOTO_SERVER=
    fi
  fi
  export LIBCI_MOTO_SERVER
}
