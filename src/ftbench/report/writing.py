"""Writing a sweep folder's report, as every route does it (``python -m ftbench.report``, the end
of a multirun, a suite's task): the settings settled and checked before any file is written,
the runs screened (``screening``), then the files, ``report.csv`` stamped with the settings.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ftbench.report import choice as choices
from ftbench.report import judgement, screening
from ftbench.report.collect import Run, collect
from ftbench.report.render import write_report
from ftbench.run.atomic import write_text

SETTINGS = ("margin", "confidence", "resamples")


def settled(runs: list[Run], choice: dict | None = None) -> dict:
    """The report's settings for ``runs``: given, else as the runs were configured; checked (the
    given ones as given: ``judgement.settings`` makes resamples a whole number)."""
    given = {k: v for k, v in (choice or {}).items() if v is not None}
    choices.check({**judgement.DEFAULTS, **given})
    return choices.check(judgement.settings(runs, choice))


def report_folder(root: Path, choice: dict | None = None,
                  runs: list[Run] | None = None) -> tuple[list[Run], dict[str, Path], dict]:
    """Write the report of the sweep in ``root``; return the runs it read (left-out ones marked),
    its files and the settings it was computed at."""
    runs = collect(root) if runs is None else runs
    chosen = settled(runs, choice)
    screened = screening.screen(root, runs).runs
    paths = write_report(root, screened, chosen)
    stamp_csv(paths["report.csv"], chosen)
    return screened, paths, chosen


def stamp_csv(path: Path, chosen: dict) -> None:
    """Add the settings the intervals were computed at to ``report.csv`` (every row)."""
    rows = list(csv.reader(io.StringIO(path.read_text(), newline="")))
    if not rows:
        return
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([*rows[0], *SETTINGS])
    for row in rows[1:]:
        writer.writerow([*row, *(chosen[k] for k in SETTINGS)])
    write_text(path, out.getvalue())
