"""The comparison report: a multirun's ``result.json`` files -> tables, statistics and plots.

``collect`` reads the runs, ``rows`` groups them (one row per strategy and study setting),
``bootstrap`` and ``verdict`` judge the strategies (one draw per report), ``render`` writes
``report.md``/``report.csv``, ``plots`` the PNGs, ``callback`` the Hydra callback that writes it
all when a multirun ends, and ``cli`` the ``python -m ftbench.report DIR`` command. A suite's
folder gets the report across its tasks (``suite_report``).
"""

from ftbench.report.collect import Run, collect
from ftbench.report.render import write_report

__all__ = ["Run", "collect", "write_report"]
