#!/usr/bin/env python3
"""Prints what the selected tests of a configured meson build directory need built, one ninja
target a line (paths relative to the build directory): each test's programs that the build
makes, and the targets it depends on.

  scripts/test-targets.py BUILD_DIR [--suite SUITE]... [NAME]...

A test is selected when it is in one of the suites or has one of the names (a suite is 'unit'
or 'libci:unit', as `meson test --suite` takes it); with neither, every test is. A build that
runs some tests then compiles only what they run (scripts/lib.sh compile_tests):
  ninja -C DIR $(scripts/test-targets.py DIR --suite unit)
Exit status 1 when no test is selected.
"""
import argparse
import json
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir")
    parser.add_argument("--suite", action="append", default=[])
    parser.add_argument("names", nargs="*")
    args = parser.parse_args()

    info = os.path.join(args.build_dir, "meson-info")
    with open(os.path.join(info, "intro-tests.json"), encoding="utf-8") as f:
        tests = json.load(f)
    with open(os.path.join(info, "intro-targets.json"), encoding="utf-8") as f:
        targets = json.load(f)
    files_of = {t["id"]: t["filename"] for t in targets}
    built = {os.path.realpath(name) for names in files_of.values() for name in names}

    def selected(test):
        if not args.suite and not args.names:
            return True
        suites = {s.split(":", 1)[-1] for s in test["suite"]} | set(test["suite"])
        return test["name"] in args.names or bool(suites & set(args.suite))

    build_dir = os.path.realpath(args.build_dir)
    needed = set()
    chosen = [t for t in tests if selected(t)]
    for test in chosen:
        for word in test["cmd"]:
            if os.path.realpath(word) in built:
                needed.add(os.path.realpath(word))
        for target in test["depends"]:
            needed.update(os.path.realpath(name) for name in files_of.get(target, []))
    if not chosen:
        print(f"error: no test in {args.build_dir} matches {sys.argv[2:]}", file=sys.stderr)
        return 1
    for path in sorted(needed):
        print(os.path.relpath(path, build_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
