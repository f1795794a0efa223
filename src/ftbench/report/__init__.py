"""The comparison report: a multirun's ``result.json`` files -> tables, statistics and plots
(docs/layout.md lists its modules; ``cli``: ``python -m ftbench.report DIR``)."""

from ftbench.report.collect import Run, collect
from ftbench.report.render import write_report

__all__ = ["Run", "collect", "write_report"]
