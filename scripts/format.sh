#!/usr/bin/env bash
# Formats the C++ sources with clang-format (.clang-format), or with --check reports every file
# that is not formatted and exits 1. Meson's `format` and `format-check` targets call this.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(-i)
if [[ "${1:-}" == "--check" ]]; then
  mode=(--dry-run -Werror)
fi
clang_format=${CLANG_FORMAT:-clang-format}
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- \
  'lib/*.cpp' 'lib/*.h' 'tools/*.cpp' 'tools/*.h' 'tests/*.cpp' 'tests/*.h' \
  'examples/*.cpp' 'examples/*.h' 'bench/*.cpp' 'bench/*.h' | sort -u)
status=0
for f in "${files[@]}"; do
  [[ -f "$f" ]] || continue
  "$clang_format" "${mode[@]}" "$f" || status=1
done
if [[ "${1:-}" == "--check" ]]; then
  if [[ $status -ne 0 ]]; then
    echo "format-check: files above differ from .clang-format; run scripts/format.sh" >&2
  else
    echo "format-check: ${#files[@]} files formatted"
  fi
fi
exit $status
