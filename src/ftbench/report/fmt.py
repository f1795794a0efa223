"""Numbers and tables as the report writes them."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from ftbench.tracking.units import si

__all__ = ["num", "records_csv", "si", "table", "table_row"]


def num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table_row(*cells: object) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def table(header: Sequence[object], rows: Iterable[Sequence[object] | str]) -> str:
    """A Markdown table: ``header``, its rule, then each row (cells, or a line written already)."""
    lines = (row if isinstance(row, str) else table_row(*row) for row in rows)
    return "\n".join([table_row(*header), "|---" * len(header) + "|", *lines])


def records_csv(records: list[dict], columns: list[str] | None = None) -> str:
    """``records`` as CSV under a header of ``columns`` (default: the first record's keys; empty
    text without either), a None as an empty cell."""
    columns = columns or (list(records[0]) if records else [])
    if not columns:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in record.items()} for record in records)
    return out.getvalue()
