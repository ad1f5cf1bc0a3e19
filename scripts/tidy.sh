#!/usr/bin/env bash
# Runs clang-tidy-16 (.clang-tidy) over libci's and the tools' sources, using the
# compile_commands.json of a configured build directory (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
tidy=${CLANG_TIDY:-clang-tidy-16}
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- 'lib/*.cpp' 'tools/*.cpp')
# clang 16 names C++23 "c++2b", and reports __cpp_concepts as 201907 although it implements what
# libstdc++ 12's <expected> checks 202002 for; without these flags it cannot see std::expected.
extra=(--extra-arg=-std=c++2b --extra-arg=-D__cpp_concepts=202002L
       --extra-arg=-Wno-macro-redefined --extra-arg=-Wno-builtin-macro-redefined)
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 "$tidy" -p "$build_dir" --quiet "${extra[@]}"
