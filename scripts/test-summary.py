#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' from one or more meson testlog.json files.

meson's own summary is not a closing line CI recognises, so the test scripts end with this one.
Skipped tests and expected failures (known bugs) are listed first, with the reasons their
output gave on lines starting 'SKIP: ' or 'XFAIL: '.
`--failed NAME` (repeatable) counts one more failure: a CI phase that is not a meson test (a
format check, a build, clang-tidy) and failed, so that the last line never says 0 failed when CI
failed.
  scripts/test-summary.py [--failed NAME]... TESTLOG...
A failed test's telling lines (doctest failures, sanitizer reports, Python tracebacks) are
printed after the list of failures: CI keeps only the tail of a run's output.
Exit status: 0 when nothing failed, 1 otherwise.
"""
import json
import re
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def reasons(entry, prefix, path):
    """The distinct reasons a test's output gave on lines starting with `prefix`."""
    output = (entry.get("stdout") or "") + (entry.get("stderr") or "")
    found = [line[len(prefix):] for line in output.splitlines() if line.startswith(prefix)]
    found = list(dict.fromkeys(found))
    return "; ".join(found) if found else f"see its log in {path}"


TELLING = re.compile(r"ERROR|FATAL|is NOT correct|values: |logged: |SUMMARY: |Sanitizer|"
                     r"leak of|^Traceback|Error: |^E  |FAIL:|^\s+#[0-9] ")


def telling_lines(entry, limit=30):
    """The lines of a failed test's output that say why it failed, or else its last lines."""
    output = ((entry.get("stdout") or "") + (entry.get("stderr") or "")).splitlines()
    found = [line for line in output if TELLING.search(line)]
    return (found or output)[-limit:]


def main(args):
    passed = failed = skipped = 0
    failures = []
    details = []
    paths = []
    while args:
        arg = args.pop(0)
        if arg == "--failed" and args:
            failed += 1
            failures.append(args.pop(0))
        else:
            paths.append(arg)
    for path in paths:
        with open(path, encoding="utf-8") as log:
            for line in log:
                if not line.strip():
                    continue
                entry = json.loads(line)
                result = entry.get("result")
                if result in PASSED:
                    passed += 1
                    if result == "EXPECTEDFAIL":
                        print(f"EXPECTED FAILURE: {entry.get('name')}: "
                              f"{reasons(entry, 'XFAIL: ', path)}")
                elif result in SKIPPED:
                    skipped += 1
                    print(f"SKIPPED: {entry.get('name')}: {reasons(entry, 'SKIP: ', path)}")
                else:
                    failed += 1
                    failures.append(f"{entry.get('name')} ({result}) in {path}")
                    details.append((entry.get("name"), telling_lines(entry)))
    for name, lines in details:
        print(f"--- why {name} failed:")
        for line in lines:
            print(f"    {line[:300]}")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
