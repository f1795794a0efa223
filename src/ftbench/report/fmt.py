"""Numbers as the report writes them."""

from __future__ import annotations

from ftbench.tracking.units import si

__all__ = ["num", "si", "table_row"]


def num(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table_row(*cells: object) -> str:
    """One row of a Markdown table."""
    return "| " + " | ".join(str(c) for c in cells) + " |"
