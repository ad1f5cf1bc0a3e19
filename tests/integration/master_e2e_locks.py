#!/usr/bin/env python3
"""A lock of 1: three branches pushed at once, on two ci-workers with two slots each, build one
after the other (each step writes start and end marks to one file)."""

import master_harness as harness


def main(case):
    master = case.start_master(case.write_config(case.standard_config()))
    case.start_workers(master, 2)
    case.serial_lock_builds(master)


if __name__ == "__main__":
    harness.run(main)
