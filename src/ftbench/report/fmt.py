"""Numbers and tables as the report writes them."""

from __future__ import annotations

import csv
import io

from ftbench.tracking.units import si

__all__ = ["num", "records_csv", "si", "table_row"]


def num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table_row(*cells: object) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


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
