"""Suites of tasks (``experiment=benchmark``): each task's comparison in its own folder, then the
report across tasks (``ftbench.report.suite_report``)."""
