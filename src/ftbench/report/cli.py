"""``python -m ftbench.report DIR`` (or ``ftbench-report DIR``): rebuild a sweep's report.

Reads every ``result.json`` under DIR and writes report.md, report.csv and plots/ into it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftbench.report.collect import RESULT_FILE, collect
from ftbench.report.render import summary_text, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ftbench-report", description="Compare the runs of a sweep folder: reads every "
        "result.json under DIR and writes report.md, report.csv and plots/ into DIR.")
    parser.add_argument("dir", type=Path, help="a run or multirun folder")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"ftbench-report: error: {str(args.dir)!r} is not a folder", file=sys.stderr)
        return 2
    runs = collect(args.dir)
    if not runs:
        print(f"ftbench-report: error: no {RESULT_FILE} or job folder under {str(args.dir)!r}",
              file=sys.stderr)
        return 2
    print(summary_text(runs, write_report(args.dir, runs)), end="")
    return 0
