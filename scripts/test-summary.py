#!/usr/bin/env python3
"""Prints 'N passed, N failed, N skipped' from one or more meson testlog.json files.

meson's own summary is not a closing line CI recognises, so the test scripts end with this one.
Exit status: 0 when nothing failed, 1 otherwise.
"""
import json
import sys

PASSED = {"OK", "EXPECTEDFAIL"}
SKIPPED = {"SKIP"}


def main(paths):
    passed = failed = skipped = 0
    failures = []
    for path in paths:
        with open(path, encoding="utf-8") as log:
            for line in log:
                if not line.strip():
                    continue
                entry = json.loads(line)
                result = entry.get("result")
                if result in PASSED:
                    passed += 1
                elif result in SKIPPED:
                    skipped += 1
                    output = (entry.get("stdout") or "") + (entry.get("stderr") or "")
                    reasons = [l[len("SKIP: "):] for l in output.splitlines() if l.startswith("SKIP: ")]
                    reasons = list(dict.fromkeys(reasons))
                    why = "; ".join(reasons) if reasons else f"see its log in {path}"
                    print(f"SKIPPED: {entry.get('name')}: {why}")
                else:
                    failed += 1
                    failures.append(f"{entry.get('name')} ({result})")
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
