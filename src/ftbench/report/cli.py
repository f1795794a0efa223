"""``python -m ftbench.report DIR`` (or ``ftbench-report DIR``): rebuild a sweep's report.

Reads every ``result.json`` under DIR and writes report.md, report.csv and plots/ into it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftbench.report.collect import RESULT_FILE, collect
from ftbench.report.render import summary_text, write_report

EXAMPLES = """\
examples:
  python -m ftbench.report multirun/compare/tf_efficientnet_lite0-digits/2025-01-31_12-00-00
  ftbench-report outputs/2025-01-31/12-00-00_gradual    one run: per-class accuracy, confusion matrix

The table is printed; report.md adds how many seeds a ranking needs, the marginal cost of
each extra accuracy point, per-class accuracy and the plots."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ftbench-report", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Compare the runs of a sweep folder: reads every result.json under DIR and\n"
        "writes report.md, report.csv and plots/ into DIR.")
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
    try:
        paths = write_report(args.dir, runs)
    except OSError as err:  # a full disk, a read-only folder, a folder where report.md goes
        print(f"ftbench-report: error: the report could not be written into {str(args.dir)!r}: {err}",
              file=sys.stderr)
        return 1
    print(summary_text(runs, paths), end="")
    return 0
