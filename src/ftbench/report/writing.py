"""Writing a sweep folder's report, as every route does it (``python -m ftbench.report``, the end
of a multirun, a suite's task): the settings settled and checked before any file is written,
the runs screened (``screening``), then the files, ``report.csv`` stamped with the settings.
"""

from __future__ import annotations

from pathlib import Path

from ftbench.report import judgement, screening
from ftbench.report.collect import Run, collect
from ftbench.report.render import Written, write_report
from ftbench.stats import choice as choices


def settled(runs: list[Run], choice: dict | None = None) -> dict:
    """The report's settings for ``runs``: given, else as the runs were configured; checked (the
    given ones as given: ``judgement.settings`` makes resamples a whole number)."""
    given = {k: v for k, v in (choice or {}).items() if v is not None}
    choices.check({**judgement.DEFAULTS, **given})
    return choices.check(judgement.settings(runs, choice))


def report_folder(root: Path, choice: dict | None = None,
                  runs: list[Run] | None = None) -> tuple[list[Run], Written, dict]:
    """Write the report of the sweep in ``root``; return the runs it read (left-out ones marked),
    its files (with what it prints) and the settings it was computed at."""
    screened, chosen = screened_runs(root, choice, runs)
    return screened, write_report(root, screened, chosen), chosen


def screened_runs(root: Path, choice: dict | None = None,
                  runs: list[Run] | None = None) -> tuple[list[Run], dict]:
    """The runs of the sweep in ``root`` as its report compares them (``screening``), and the
    report's settings for them (``settled``)."""
    runs = collect(root) if runs is None else runs
    return screening.screen(root, runs), settled(runs, choice)

