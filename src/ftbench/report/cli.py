"""``python -m ftbench.report DIR`` (or ``ftbench-report DIR``): rebuild a sweep's report, or a
suite's report across its tasks when DIR holds ``suite.yaml``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ftbench.report.collect import RESULT_FILE, collect
from ftbench.report.judgement import DEFAULTS
from ftbench.report.suite_results import is_suite
from ftbench.report.writing import report_folder
from ftbench.run.failures import UserError
from ftbench.stats.choice import MAX_RESAMPLES, parse

EXAMPLES = """\
examples:
  python -m ftbench.report multirun/compare/tf_efficientnet_lite0-digits/2025-01-31_12-00-00
  ftbench-report outputs/2025-01-31/12-00-00_gradual    one run: per-class accuracy, confusion matrix
  python -m ftbench.report multirun/benchmark/embedded-compare-tf_efficientnet_lite0
                                                         a suite (its suite.yaml): the report across tasks

The table is printed; report.md adds how many seeds a ranking needs, the marginal cost of
each extra accuracy point, per-class accuracy and the plots."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ftbench-report", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="Compare the runs of a sweep folder: reads every result.json under DIR and\n"
        "writes report.md, report.csv and plots/ into DIR. A suite's folder (with suite.yaml)\n"
        "gets the report across its tasks; each task's folder is a sweep folder of its own.")
    parser.add_argument("dir", type=Path, help="a run or multirun folder")
    # read as text and judged by ``choice.check``: every refusal is one line, before any file changes
    parser.add_argument("--margin", type=parse, help="the smallest accuracy difference that matters "
                        "(default: the runs' or the suite's report.margin, else 0.01)")
    parser.add_argument("--confidence", type=parse, help="of every interval (default 0.95)")
    parser.add_argument("--resamples", type=parse, help=f"bootstrap resamples (default 2000, at most "
                        f"{MAX_RESAMPLES:,})")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"ftbench-report: error: {str(args.dir)!r} is not a folder", file=sys.stderr)
        return 2
    choice = {"margin": args.margin, "confidence": args.confidence, "resamples": args.resamples}
    if is_suite(args.dir):
        return suite_report(args.dir, choice)
    runs = collect(args.dir)
    if not runs:
        print(f"ftbench-report: error: no {RESULT_FILE} or job folder under {str(args.dir)!r}",
              file=sys.stderr)
        return 2
    try:
        _, paths, _ = report_folder(args.dir, choice, runs)
    except UserError as err:
        print(f"ftbench-report: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, a read-only folder, a folder where report.md goes
        print(f"ftbench-report: error: the report could not be written into {str(args.dir)!r}: {err}",
              file=sys.stderr)
        return 1
    print(paths.summary, end="")
    return 0


def suite_report(root: Path, choice: dict) -> int:
    """The report across the tasks of the suite in ``root`` (a task's own: its folder as DIR), at
    the settings given (each checked before any file is written), else the suite's."""
    from ftbench.report.suite_report import suite_summary_text, write_suite_report
    from ftbench.report.suite_results import read_suite_record
    from ftbench.stats.choice import check

    try:
        record = read_suite_record(root)
        given = {k: v for k, v in choice.items() if v is not None}
        check({**DEFAULTS, "margin": record.margin, **record.settings, **given})
        cross, paths = write_suite_report(root, choice.get("margin"), choice=choice)
    except (OSError, ValueError) as err:  # a refused setting; a suite.yaml that is not the suite's
        print(f"ftbench-report: error: {err}", file=sys.stderr)
        return 2
    print(suite_summary_text(cross, paths), end="")
    return 0
