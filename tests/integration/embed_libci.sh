#!/usr/bin/env bash
# Installs libci into a temporary DESTDIR, then builds and runs a program against it with
# nothing but `pkg-config libci` -- the way another project embeds the library.
set -euo pipefail
build_dir=${LIBCI_BUILD_DIR:?}
source_dir=${LIBCI_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build_dir" --destdir "$tmp/root" --no-rebuild --quiet >"$tmp/install.log" 2>&1 \
  || { cat "$tmp/install.log"; exit 1; }
pc=$(find "$tmp/root" -name libci.pc | head -n1)
[[ -n "$pc" ]] || { echo "FAIL: no libci.pc installed"; exit 1; }
echo "installed $pc"

# Point the installed .pc's prefix into the DESTDIR copy.
export PKG_CONFIG_PATH=$(dirname "$pc")
prefix=$(pkg-config --variable=prefix libci)
pc_flags=(--define-variable=prefix="$tmp/root$prefix")
flags=$(pkg-config "${pc_flags[@]}" --cflags --libs libci)
echo "pkg-config libci: $flags"
c++ -std=c++23 -Wall -Wextra -Werror -o "$tmp/embed" "$source_dir/tests/integration/embed/main.cpp" \
  $flags
libdir=$(pkg-config "${pc_flags[@]}" --variable=libdir libci)
out=$(LD_LIBRARY_PATH=$libdir "$tmp/embed")
echo "$out"
grep -q '^libci [0-9]' <<<"$out" || { echo "FAIL: no version line"; exit 1; }
grep -q 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad' <<<"$out" \
  || { echo "FAIL: wrong sha256"; exit 1; }
grep -q 'redacted https://user:\[redacted\]@host/x' <<<"$out" || { echo "FAIL: not redacted"; exit 1; }
echo "PASS: a program embeds the installed libci through pkg-config"
