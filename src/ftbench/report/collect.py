"""Reading a sweep folder: every job's typed record (``ftbench.run.result.job_record``, validated
against ``ftbench.run.schema``), so that a field not in the schema fails loudly instead of reading
as absent; nothing read is evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftbench.run.migrate import UnreadableResult, parse
from ftbench.run.result import RESULT_FILE, SAVED_CONFIG, job_record, unreadable_record
from ftbench.run.schema import Record

__all__ = ["LEFT_OUT", "RESULT_FILE", "Run", "collect"]

LEFT_OUT = "left out"  # a run the report sets aside: another test set, a repeated seed, bad predictions


@dataclass
class Run:
    """One job of a sweep: its record (its ``result.json``, or a failed or unreadable record)
    and its folder. ``data`` is the record as plain data; ``result`` the same, typed."""

    data: dict
    dir: str = "."
    _result: Record | None = field(default=None, repr=False, compare=False)
    left_out: str | None = None  # why the report leaves this run out (``report.screening``)

    @classmethod
    def of(cls, record: Record, dir: str = ".") -> Run:
        return cls(record.model_dump(by_alias=True, exclude_unset=True), dir, record)

    @property
    def result(self) -> Record:
        """The typed record (``ftbench.run.schema.Record``), migrated from an older schema; a
        ``Run`` made from data that is no result reads as an ``unreadable`` record, with why."""
        if self._result is None:
            try:
                self._result = parse(self.data, Record)
            except UnreadableResult as err:
                self._result = unreadable_record(err)
        return self._result

    @property
    def status(self) -> str:
        return LEFT_OUT if self.left_out else self.result.status

    @property
    def error(self) -> str | None:
        """Why the run failed, or why the report left it out."""
        return f"left out: {self.left_out}" if self.left_out else self.result.error

    @property
    def strategy(self) -> str:
        return self.result.strategy or "unknown"

    @property
    def completed(self) -> bool:
        """Ran to the end with its accuracy: the test's, or a search trial's validation one."""
        return self.status == "completed" and self.result.judged_value is not None


def collect(root: Path) -> list[Run]:
    """Every job under ``root``: a folder with a ``result.json`` or with Hydra's saved config."""
    saved = {p.parent.parent for p in root.rglob(SAVED_CONFIG.name)
             if p.parent.name == SAVED_CONFIG.parent.name}
    job_dirs = {p.parent for p in root.rglob(RESULT_FILE)} | saved
    return [Run.of(job_record(d), str(d.relative_to(root)) if d != root else ".")
            for d in sorted(job_dirs)]
