"""A sweep's or a suite's results as pandas DataFrames, for notebooks.

Read-only and torch-free: every record is read through the report's reader
(``ftbench.report.collect``, which reads ``result.json`` with ``ftbench.run.result``), so a
crafted or broken folder is as harmless here as it is to ``python -m ftbench.report``.

- ``runs(folder)``: one row per run (task, strategy, seed, status, knobs, accuracies, costs);
- ``verdict(folder)``: one row per strategy (and task), the report's verdict;
- ``trials(folder)``: the search trials of a tuned sweep, from its Optuna storage.
"""

from ftbench.results.run_table import runs
from ftbench.results.search_trials import trials
from ftbench.results.sweeps import sweeps
from ftbench.results.verdicts import verdict

__all__ = ["runs", "sweeps", "trials", "verdict"]
