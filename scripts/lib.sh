# Shared by scripts/quickstart.sh, scripts/test.sh and .ci/run. Sourced, not run.
# shellcheck shell=bash

# Debian 12 packages needed to build libci and its tools.
LIBCI_BUILD_PACKAGES=(
  g++ meson ninja-build pkg-config cmake git python3
  libcurl4-openssl-dev libssl-dev libgit2-dev libyaml-cpp-dev rapidjson-dev libcli11-dev
  doctest-dev libboost-dev libsqlite3-dev libpugixml-dev libzip-dev libspdlog-dev
)
# What the test suites use besides the build: real peers run on 127.0.0.1.
LIBCI_TEST_PACKAGES=(
  python3-botocore
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
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Configures DIR with the given meson options unless it is configured already; ninja
# reconfigures by itself when a meson.build changes.
configure_build() {
  local dir=$1
  shift
  if [[ ! -f "$dir/build.ninja" ]]; then
    log "configuring $dir $*"
    meson setup "$dir" "$@" >/dev/null || meson setup "$dir" "$@"
  fi
}

# Builds DIR, printing only warnings and errors (ninja's full output goes to DIR/ninja.log).
compile_build() {
  local dir=$1
  log "building $dir"
  if ! ninja -C "$dir" >"$dir/ninja.log" 2>&1; then
    grep -E -A12 'FAILED|error:' "$dir/ninja.log" | head -200 >&2
    echo "error: build failed; full log in $dir/ninja.log" >&2
    return 1
  fi
}
