#!/usr/bin/env bash
# Runs clang-tidy-16 (.clang-tidy) over the C++ sources, using the compile_commands.json of a
# configured build directory (default: build). Prints what it finds and exits 1 when it finds
# anything.
#   scripts/tidy.sh [--header-filter REGEX] [BUILD_DIR] [-- PATHSPEC...]
# Every .cpp file of lib/, tools/, tests/, examples/ and bench/ by default (headers through
# .clang-tidy's HeaderFilterRegex); git pathspecs choose others, e.g. `scripts/tidy.sh build --
# lib/src/git` or `-- lib ':!lib/src/master'`. The files must be in BUILD_DIR's build (tests,
# examples and bench are when their options are enabled or auto, as by default).
# --header-filter replaces .clang-tidy's HeaderFilterRegex: which headers a file's findings may
# come from.
set -euo pipefail
cd "$(dirname "$0")/.."
header_filter=()
if [[ ${1:-} == --header-filter ]]; then
  header_filter=("--header-filter=${2:?--header-filter needs a regex}")
  shift 2
fi
build_dir=build
if [[ $# -gt 0 && $1 != -- ]]; then
  build_dir=$1
  shift
fi
[[ ${1:-} == -- ]] && shift
pathspecs=("$@")
if [[ ${#pathspecs[@]} -eq 0 ]]; then
  pathspecs=(lib tools tests examples bench)
fi
if [[ ! -f $build_dir/compile_commands.json ]]; then
  echo "error: $build_dir/compile_commands.json not found; configure it first (meson setup $build_dir)" >&2
  exit 2
fi
tidy=${CLANG_TIDY:-clang-tidy-16}
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- "${pathspecs[@]}" |
  grep -E '\.cpp$' || true)
if [[ ${#files[@]} -eq 0 ]]; then
  echo "error: no .cpp file matches ${pathspecs[*]}" >&2
  exit 2
fi
# clang 16 names C++23 "c++2b", and reports __cpp_concepts as 201907 although it implements what
# libstdc++ 12's <expected> checks 202002 for; without these flags it cannot see std::expected.
# (-U first: redefining a builtin macro is a warning, an error under the build's -Werror.)
export CI_TIDY=$tidy CI_TIDY_BUILD_DIR=$build_dir
export CI_TIDY_ARGS="--extra-arg=-std=c++2b --extra-arg=-U__cpp_concepts --extra-arg=-D__cpp_concepts=202002L"
export CI_TIDY_HEADER_FILTER=${header_filter[0]:-}
# One file per clang-tidy process, as many at once as there are cores. Each exit status is
# mapped to 0 or 1: xargs stops at the first command that a signal kills or that exits 255, and
# clang-tidy 16 does crash on some code (bugprone-unchecked-optional-access); the crash is then
# a finding that names its file, and the other files are still checked.
# shellcheck disable=SC2016 # $1 and the variables expand in the inner shell
if printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 1 bash -c '
  # shellcheck disable=SC2086 # CI_TIDY_ARGS holds several arguments
  "$CI_TIDY" -p "$CI_TIDY_BUILD_DIR" --quiet $CI_TIDY_ARGS ${CI_TIDY_HEADER_FILTER:+"$CI_TIDY_HEADER_FILTER"} "$1" 2>&1 |
    grep -v " warnings generated\.$"
  rc=${PIPESTATUS[0]}
  if [[ $rc -ne 0 ]]; then
    [[ $rc -gt 128 ]] && echo "error: $CI_TIDY crashed (signal $((rc - 128))) on $1"
    exit 1
  fi' _; then
  echo "tidy: ${#files[@]} files clean"
else
  echo "tidy: clang-tidy reported the findings above (${#files[@]} files checked)" >&2
  exit 1
fi
